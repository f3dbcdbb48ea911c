#!/usr/bin/env python3
"""Writes the committed seed corpora, corpus/<target>/seed-*.

Tokens are minted by scopegate itself (`scopegate token ...`, the release
binary: `cargo build --release` first, or set SCOPEGATE=path/to/binary)
with the keys of fixtures/*.toml; variants the CLI refuses to mint (retired
keys, revoked jti, bad headers) are signed here with HMAC-SHA256. The targets
verify at a fixed NOW of 2027-01-15T08:00:00Z: a token minted after that
carries an `iat` past NOW and is refused, so move NOW in the targets then.
Needs only the Python standard library.
"""
import base64, hmac, hashlib, json, os, subprocess, tempfile, urllib.parse
os.chdir(os.path.dirname(os.path.abspath(__file__)))
SG = os.environ.get('SCOPEGATE', '../target/release/scopegate')
def sg(*a):
    return subprocess.run([SG, *a], check=True, capture_output=True, text=True).stdout.strip()
def write(target, name, data):
    d = f'corpus/{target}'
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str): data = data.encode()
    open(f'{d}/seed-{name}', 'wb').write(data)
def b64u(b): return base64.urlsafe_b64encode(b).rstrip(b'=').decode()
def hs256(claims, key, header='{"alg":"HS256","typ":"JWT"}'):
    inp = b64u(header.encode()) + '.' + b64u(json.dumps(claims, separators=(',',':')).encode())
    sig = hmac.new(key.encode(), inp.encode(), hashlib.sha256).digest()
    return inp + '.' + b64u(sig)

SHOP = 'live_api_key_shop_7nzvc7wsBQQISLeFSVhROys9V1bUJ1z7'
ROT_NEW = 'live_api_key_rotated_new_Q2hQoVtE0bYw9aDz'
ROT_OLD = 'live_api_key_rotated_old_b1Tq9XyZ3kLm'
NOW = 1_800_000_000
BOOKING = '58190fc6-1ec0-4ebb-b627-7ce6aa9fc703'

# jwt_verify: minted by `scopegate token signed-search`, plus variants.
write('jwt_verify', 'shop-email', sg('token', 'signed-search', '--config', 'fixtures/apps.toml', '--app', 'shop', '--email', 'marty@example.com', '--ttl', '3650d'))
write('jwt_verify', 'rotated-meta', sg('token', 'signed-search', '--config', 'fixtures/apps.toml', '--app', 'rotated', '--meta', 'customer_id=c-1001', '--ttl', '3650d'))
write('jwt_verify', 'vendor-no-app-slug', hs256({'customer.email': 'marty@example.com'}, SHOP))
write('jwt_verify', 'retired-key', hs256({'app_slug': 'rotated', 'iat': NOW - 60}, ROT_OLD))
write('jwt_verify', 'revoked-before', hs256({'app_slug': 'rotated', 'iat': 1_700_000_000}, ROT_NEW))
write('jwt_verify', 'burned-jti', hs256({'app_slug': 'shop', 'jti': 'burned'}, SHOP))
write('jwt_verify', 'string-exp', hs256({'app_slug': 'shop', 'exp': '1900000000'}, SHOP))
write('jwt_verify', 'nbf-iat-exp', hs256({'app_slug': 'shop', 'nbf': NOW - 10, 'iat': NOW - 10, 'exp': NOW + 3600.5}, SHOP))
write('jwt_verify', 'kid-header', hs256({'app_slug': 'shop'}, SHOP, '{"alg":"HS256","kid":"../../dev/null"}'))
write('jwt_verify', 'alg-none', b64u(b'{"alg":"none"}') + '.' + b64u(b'{"app_slug":"shop"}') + '.')

# search_query: real signed-search queries.
tok = open('corpus/jwt_verify/seed-shop-email').read()
write('search_query', 'vendor-example', 'search=customer.email:marty@example.com;state:confirmed&signed_search=' + tok)
write('search_query', 'encoded', 'search=customer.email%3Amarty%40example.com&signed_search=' + tok + '&limit=5&include=customer')
write('search_query', 'meta-subject', 'search=meta.customer_id:c-1001;resource.id:r-1&signed_search=t')
write('search_query', 'hidden-semicolon', 'search=customer.email:me@x.io&x=1;search=customer.email:marty@example.com&signed_search=t')
write('search_query', 'lookalike', 'search=customer.email:marty@example.com&signed_search=t&Search=customer.email:v@x.io&search%00=x:1')
write('search_query', 'array-and-repeat', 'search[]=a:1&search=customer.email:marty@example.com&search=state:x&signed_search=t&signed_search=u')
write('search_query', 'second-decoding', 'search=customer.email:marty%2540example.com;state:x%3Bcustomer.email:v&signed_search=t')

# sso_decode: minted by `scopegate token sso`, plus plaintext payloads.
sso_dir = tempfile.TemporaryDirectory()
sso = os.path.join(sso_dir.name, 'sso.toml')
open(sso, 'w').write('[[sso_company]]\ncompany_id = "37000"\nsecure_key = "abcdef0123456789SECUREKEY"\n')
v2 = sg('token', 'sso', '--config', sso, '--company', '37000', '--email', 'marty@example.com', '--first-name', 'Marty', '--last-name', 'McFly', '--ttl', '3650d')
write('sso_decode', 'v2', v2)
leg = sg('token', 'sso', '--config', sso, '--company', '37000', '--email', 'marty@example.com', '--reference', 'cust-8812', '--mobile', '0123456789', '--ttl', '3650d', '--legacy')
once = urllib.parse.unquote(leg)
write('sso_decode', 'legacy', once)
write('sso_decode', 'legacy-plus-as-space', once.replace('+', ' '))
write('sso_decode', 'legacy-url-encoded', leg)
write('sso_decode', 'payload-ruby', '{"first_name":"Marty","last_name":"McFly","email":"marty@example.com","mobile":"0123456789","reference":"cust-8812","expires":"2027-01-15T10:00:00+01:00"}')
write('sso_decode', 'payload-java', '{"first_name":"Ann","last_name":"Lee","email":"ann@example.com","expires":"2027-10-31T01:30:00"}')
write('sso_decode', 'payload-csharp', '{"first_name":"J\\u00f6ns","last_name":"Berg","email":"j\\u00f6ns@ex\\u00e4mple.se","mobile":null,"expires":"2027-01-15T09:00:00.250Z","extra":[1,2]}')

# action_link: first byte is the method (0: GET, 2: POST; high bit: has a body).
def link(*extra):
    url = sg('token', 'action-link', '--config', 'fixtures/action_link.toml', '--app', 'shop', '--booking', BOOKING, '--action', 'cancel_by_customer', '--ttl', '3650d', *extra)
    return url.removeprefix('https://api.example.com')
write('action_link', 'get', b'\x00' + link('--email', 'marty@example.com').encode())
write('action_link', 'get-redirect', b'\x00' + link('--redirect', 'https://shop.example.com/done').encode())
write('action_link', 'post-refused', b'\x02' + link('--email', 'marty@example.com').encode())
vendor = hs256({'booking_id': BOOKING, 'action': 'cancel_by_customer', 'exp': NOW + 3600}, SHOP)
write('action_link', 'vendor-token', b'\x00' + f'/v2/bookings/{BOOKING}/external_action/cancel_by_customer?signature={vendor}&redirect=https%3A%2F%2Fevil.example%2F'.encode())
write('action_link', 'dot-segments', b'\x00' + f'/v2/bookings/x/%2e%2e/{BOOKING}/external_action/cancel_by_customer?signature={vendor}&Signature=x'.encode())
write('action_link', 'other-booking', b'\x00' + f'/v2/bookings/b-1002/external_action/cancel_by_customer?signature={vendor}'.encode())

# permission: the vendor's names, requirements, near misses.
for p in ['bookings_rw_own', 'customers_r_all', 'payments_rw_own', 'availability_r', 'subaccounts_rw', 'blocks_rwd_all',
          'bookings_r_own', 'payments_rwd_all', 'bookings:rw', 'customers', 'availability_r_all', 'bookings_rw_own_x']:
    write('permission', p.replace(':', '-'), p)

# path_route: real paths and the tricks normalization exists for.
for name, p in [('action', '/v2/bookings/b-1001/external_action/cancel_by_customer'),
                ('dotdot-encoded', '/v2/bookings/%2e%2e/x'),
                ('dirty', '/v2/./bookings//%62-1001/../b-1002/%7Euser'),
                ('dot-params', '/v2/bookings/..;/admin'),
                ('encoded-slash', '/v2/bookings/a%2fb'),
                ('trailing', '/v2/resources/r-1/'),
                ('root-escape', '/../../v2/bookings'),
                ('open', '/open'),
                ('unicode', '/v2/bookings/j\u00f6ns/%C3%A4%20x')]:
    write('path_route', name, p)

# config: minimal valid configs.
write('config', 'minimal', '[[upstream]]\nname = "b"\nurl = "http://127.0.0.1:9"\n\n[[route]]\nname = "v2"\npath = "/v2/*"\nauth = ["public"]\nupstream = "b"\n')
write('config', 'action-link', open('fixtures/action_link.toml').read())
write('config', 'routes', open('fixtures/routes.toml').read())
write('config', 'apps', open('fixtures/apps.toml').read())
write('config', 'sso', '[listen]\naddress = "127.0.0.1:0"\n\n[[sso_company]]\ncompany_id = "37000"\nsecure_key = "abcdef0123456789SECUREKEY"\ntimezone = "Europe/London"\naccept_legacy = false\n\n[sso]\nparam = "sso_token"\n')
