"""Who a JWT bearer says it is, and the admin credential behind meshgate's own tokens.

Kept apart from `node/auth.py` (API keys) so that the cryptographic rules for
tokens — which key may verify which token, which algorithms are allowed, how
passwords are stored — live in one small place that can be reviewed on its own:
`claims` (what a token says, an IdP's settings), `tokens` (issuing and verifying),
`jwks` (an IdP's keys), `passwords`, `strength` (secrets) and `throttle` (logins).

Import the module you need: this package loads none of them, so a command that
only checks a secret's strength does not load PyJWT, cryptography and aiohttp.
"""
