"""Secret shapes every output is checked against (issue 15 item 5).

Each entry is a secret value that must never appear in an event, an alert, a dead letter, the report or a
sink payload, and the ways it is planted: under a key (``KEYED``) or inside free text (``TEXT``). Values are
fake and distinctive (``LEAK`` markers), so a substring check finds any leak.
"""

from __future__ import annotations

from typing import Any

PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAleakPEMbodyLEAK0001abcdefghijklmnop\n"
       "qrstuvwxyzLEAKpemline2ABCDEFGH\n-----END RSA PRIVATE KEY-----")

# (key name, secret value): the value must be masked wherever the key appears.
KEYED: list[tuple[str, str]] = [
    ("db_password", "LEAKdbpw0001"),
    ("newPassword", "LEAKnewpw0002"),
    ("X-Api-Key", "LEAKxapikey0003"),
    ("aws_secret_access_key", "LEAKawssecret0004"),
    ("AWS_SESSION_TOKEN", "LEAKawssession0005"),
    ("x-amz-security-token", "LEAKamzsec0006"),
    ("private_key_pem", "LEAKprivpem0007"),
    ("cookie", "sid=LEAKcookie0008"),
    ("Set-Cookie", "sid=LEAKsetcookie0009"),
    ("client_secret", "LEAKclientsecret0010"),
    ("sessionToken", "LEAKoktasession0011"),
    ("password", "LEAKpassword0012"),
    ("secret_id", "LEAKapprole0013"),
    ("client_assertion", "LEAKclientassertion0014"),
    ("code_verifier", "LEAKpkceverifier0015"),
    ("mfaRecoveryCodes", "LEAKrecoverycodes0016"),
]
# Free-text secrets: (text that embeds the secret, the secret part that must disappear).
TEXT: list[tuple[str, str]] = [
    (PEM, "LEAKpemline2"),
    (PEM, "leakPEMbodyLEAK0001"),
    ("using key tmprl_LEAKtemporalkey0101_AbCdEf012345 for ci", "LEAKtemporalkey0101"),
    ("GET /cb?state=x&access_token=LEAKaccesstoken0102&next=/", "LEAKaccesstoken0102"),
    ("POST /sso SAMLResponse=PHNhbWxwOlLEAKsaml0103 RelayState=x", "PHNhbWxwOlLEAKsaml0103"),
    ("login failed user=bob password=LEAKpasswordkv0104 retry=1", "LEAKpasswordkv0104"),
    ("calling api with api_key=LEAKapikeykv0105", "LEAKapikeykv0105"),
    ("connect postgres://app:LEAKdsnpw0106@db.internal:5432/orders", "LEAKdsnpw0106"),
    ("header Authorization: Splunk 9f8e7d6c-LEAK-0107-splunkhectoken", "9f8e7d6c-LEAK-0107-splunkhectoken"),
    ("Authorization: ApiKey LEAKelasticapikey0108base64==", "LEAKelasticapikey0108base64"),
    ("cloned with ghp_LEAKgithubtoken0109abcdefghijklmn", "ghp_LEAKgithubtoken0109abcdefghijklmn"),
    ("Authorization: Bearer LEAKbearer0110abcdef", "LEAKbearer0110abcdef"),
    ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJMRUFLIn0.LEAKjwtsig0111xyz", "LEAKjwtsig0111xyz"),
    ("vault token hvs.LEAKvaulttoken0112abcdefghij used", "hvs.LEAKvaulttoken0112abcdefghij"),
    ('{"user": "bob", "password": "LEAKjsoninstring0113"}', "LEAKjsoninstring0113"),
    # "Name: value" in free text: HTTP header dumps, config lines, Go's %+v of a struct
    ('curl -H "X-Api-Key: LEAKheaderkey0114abc" https://api.internal/v1', "LEAKheaderkey0114abc"),
    ("request headers Cookie: sid=LEAKcookiehdr0115; theme=dark", "LEAKcookiehdr0115"),
    ("loaded config db password: LEAKcolonpw0116", "LEAKcolonpw0116"),
    ("client {User:bob Token:LEAKgostruct0117 Retries:3}", "LEAKgostruct0117"),
    # Okta's API token scheme (an admin's token in a proxy or app log), OAuth DPoP-bound access tokens
    ("GET /api/v1/users Authorization: SSWS 00LEAKoktaapitoken0118abcdefghijklmnopq", "00LEAKoktaapitoken0118abcdefghijklmnopq"),
    ("Authorization: DPoP LEAKdpop0123abcdefghijklmn", "LEAKdpop0123abcdefghijklmn"),
    # Vendor token shapes a worker or CI log leaks without a key name in front
    ("notify xoxb-1234567890-LEAKslack0119abcdefghij failed", "xoxb-1234567890-LEAKslack0119abcdefghij"),
    ("xoxp-1234567890-LEAKslackuser0124abcdef", "xoxp-1234567890-LEAKslackuser0124abcdef"),
    ("charge with sk_live_LEAKstripe0120abcdefghijklmn done", "sk_live_LEAKstripe0120abcdefghijklmn"),
    ("maps key AIzaSyLEAKgoogle0121abcdefghijklmnopqr", "AIzaSyLEAKgoogle0121abcdefghijklmnopqr"),
    ("AIzaSyLEAKgoogleAlone0125abcdefghijklmnop", "AIzaSyLEAKgoogleAlone0125abcdefghijklmnop"),
    ("push with glpat-LEAKgitlab0122abcdefgh ok", "glpat-LEAKgitlab0122abcdefgh"),
]

SECRETS: list[str] = [v if not v.startswith("sid=") else v[4:] for _, v in KEYED] + [s for _, s in TEXT]


def nested_secret(levels: int, secret: str) -> Any:
    node: Any = {"password": secret, "note": f"password={secret}"}
    for _ in range(levels):
        node = {"x": node}
    return node


def secret_payload() -> dict[str, Any]:
    """Every shape at once, as a vendor object: keys, header pairs, JSON in a string, free text, deep values."""
    payload: dict[str, Any] = {key: value for key, value in KEYED}
    payload["headers"] = [{"name": "Authorization", "value": "Basic LEAKheaderpair0201xyz"},
                          {"name": "Accept", "value": "application/json"}]
    payload["notes"] = [text for text, _ in TEXT]
    payload["deep"] = nested_secret(70, "LEAKdeep0202")
    payload["deeplist"] = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["password=LEAKdeeplist0203"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
    return payload


ALL_SECRETS = [*SECRETS, "LEAKheaderpair0201", "LEAKdeep0202", "LEAKdeeplist0203"]


def leaks(blob: bytes | str) -> list[str]:
    """The secrets of the corpus that appear in ``blob`` (JSON-escaped forms too)."""
    text = blob.decode("utf-8", "replace") if isinstance(blob, bytes) else blob
    text = text.replace("\\n", "\n").replace("\\/", "/")
    return [s for s in ALL_SECRETS if s in text]
