#!/usr/bin/env python3
"""Mints the action-link interop vectors with PyJWT, an implementation
independent of scopegate's. Output: pyjwt_action_links.json (committed; the
Rust tests read it and need no Python).

    pip install pyjwt==2.15.1 && python3 make_pyjwt_action_vectors.py > pyjwt_action_links.json

Each case names the path it is used on (booking id, action); times are fixed
so the output is reproducible, and the tests verify at `now`.
"""
import json

import jwt  # PyJWT

KEY = "live_api_key_7nzvc7wsBQQISLeFSVhROys9V1bUJ1z7"  # the vendor docs' example key
NOW = 1_800_000_000
BOOKING = "58190fc6-1ec0-4ebb-b627-7ce6aa9fc703"


def hs256(payload, key=KEY, algorithm="HS256", headers=None):
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def case(name, token, booking=BOOKING, action="cancel_by_customer", **expect):
    return dict(name=name, token=token, booking=booking, action=action, **expect)


vectors = {
    "generator": f"PyJWT {jwt.__version__}",
    "key": KEY,
    "now": NOW,
    "accept": [
        case("the vendor's payload: booking_id and action only",
             hs256({"booking_id": BOOKING, "action": "cancel_by_customer"}),
             app="my-app-6165", subject=None),
        case("with app_slug, customer, exp and jti",
             hs256({"booking_id": BOOKING, "action": "cancel_by_customer", "app_slug": "my-app-6165",
                    "customer.email": "marty@example.com", "exp": NOW + 3600, "iat": NOW - 5,
                    "jti": "0f1e2d3c"}),
             app="my-app-6165", subject="customer.email=marty@example.com"),
        case("meta subject",
             hs256({"booking_id": BOOKING, "action": "cancel_by_customer", "meta.customer_id": "12345"}),
             app="my-app-6165", subject="meta.customer_id=12345"),
    ],
    "reject": [
        case("another booking on the path",
             hs256({"booking_id": BOOKING, "action": "cancel_by_customer"}), booking="other-booking"),
        case("another action on the path",
             hs256({"booking_id": BOOKING, "action": "cancel_by_customer"}), action="confirm"),
        case("wrong key", hs256({"booking_id": BOOKING, "action": "cancel_by_customer"}, key="not-the-key")),
        case("expired", hs256({"booking_id": BOOKING, "action": "cancel_by_customer", "exp": NOW - 3600})),
        case("string exp",
             hs256({"booking_id": BOOKING, "action": "cancel_by_customer", "exp": str(NOW + 3600)})),
        case("HS512", hs256({"booking_id": BOOKING, "action": "cancel_by_customer"}, algorithm="HS512")),
        case("kid header",
             hs256({"booking_id": BOOKING, "action": "cancel_by_customer"}, headers={"kid": "0001"})),
        case("alg none", jwt.encode({"booking_id": BOOKING, "action": "cancel_by_customer"}, None,
                                    algorithm="none")),
        case("a signed-search token",
             hs256({"app_slug": "my-app-6165", "customer.email": "marty@example.com"})),
        case("numeric booking_id", hs256({"booking_id": 42, "action": "cancel_by_customer"}), booking="42"),
        case("unknown app_slug",
             hs256({"booking_id": BOOKING, "action": "cancel_by_customer", "app_slug": "someone-else"})),
    ],
}

print(json.dumps(vectors, indent=1))
