#!/usr/bin/env python3
"""Mints the signed-search interop vectors with PyJWT, an implementation
independent of scopegate's. Output: pyjwt_signed_search.json (committed; the
Rust tests read it and need no Python).

    pip install pyjwt==2.15.1 && python3 make_pyjwt_vectors.py > pyjwt_signed_search.json

Times are fixed so the output is reproducible; the tests verify at `now`.
"""
import json

import jwt  # PyJWT

KEY = "live_api_key_7nzvc7wsBQQISLeFSVhROys9V1bUJ1z7"  # the vendor docs' example key
NOW = 1_800_000_000


def hs256(payload, key=KEY, headers=None):
    return jwt.encode(payload, key, algorithm="HS256", headers=headers)


vectors = {
    "generator": f"PyJWT {jwt.__version__}",
    "key": KEY,
    "now": NOW,
    "accept": [
        {"name": "vendor email token, no exp",
         "token": hs256({"app_slug": "my-app-6165", "customer.email": "marty@example.com"}),
         "search": "customer.email:marty@example.com;state:confirmed",
         "subject": "customer.email=marty@example.com"},
        {"name": "vendor meta token",
         "token": hs256({"app_slug": "my-app-6165", "meta.customer_id": "12345"}),
         "search": "meta.customer_id:12345",
         "subject": "meta.customer_id=12345"},
        {"name": "numeric exp in the future, iat",
         "token": hs256({"app_slug": "my-app-6165", "customer.email": "doc@example.com",
                         "exp": NOW + 3600, "iat": NOW - 60}),
         "search": "customer.email:doc@example.com",
         "subject": "customer.email=doc@example.com"},
    ],
    "reject": [
        {"name": "expired",
         "token": hs256({"app_slug": "my-app-6165", "customer.email": "marty@example.com", "exp": NOW - 3600}),
         "search": "customer.email:marty@example.com"},
        {"name": "string exp",
         "token": hs256({"app_slug": "my-app-6165", "customer.email": "marty@example.com", "exp": str(NOW + 3600)}),
         "search": "customer.email:marty@example.com"},
        {"name": "wrong key",
         "token": hs256({"app_slug": "my-app-6165", "customer.email": "marty@example.com"}, key="not-the-key"),
         "search": "customer.email:marty@example.com"},
        {"name": "HS512",
         "token": jwt.encode({"app_slug": "my-app-6165", "customer.email": "marty@example.com"}, KEY, algorithm="HS512"),
         "search": "customer.email:marty@example.com"},
        {"name": "kid header",
         "token": hs256({"app_slug": "my-app-6165", "customer.email": "marty@example.com"}, headers={"kid": "1"}),
         "search": "customer.email:marty@example.com"},
        {"name": "signed pair absent",
         "token": hs256({"app_slug": "my-app-6165", "customer.email": "marty@example.com"}),
         "search": "state:confirmed"},
        {"name": "other customer in search",
         "token": hs256({"app_slug": "my-app-6165", "customer.email": "marty@example.com"}),
         "search": "customer.email:doc@example.com"},
        {"name": "action token as signed search",
         "token": hs256({"app_slug": "my-app-6165", "booking_id": "b-1", "action": "cancel",
                         "customer.email": "marty@example.com"}),
         "search": "customer.email:marty@example.com"},
        {"name": "unknown app",
         "token": hs256({"app_slug": "other-app", "customer.email": "marty@example.com"}),
         "search": "customer.email:marty@example.com"},
    ],
}
print(json.dumps(vectors, indent=2))
