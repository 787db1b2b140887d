#!/usr/bin/env python3
"""Signs and posts a Twilio webhook as Twilio would, for manual runs against the dev host.

Twilio signs the URL it was configured with, which differs from the URL the
request reaches when the dev host sits behind a tunnel or proxy: --url is
where the request goes, --public-url (default: --url) is what gets signed,
i.e. public_base_url + the webhook's path. The signature is X-Twilio-Signature
(providers.md 1.3): base64(HMAC-SHA1(auth token, URL + every parameter's name
and value, names sorted, a repeated name's distinct values sorted)).

With --shared-key-id and --shared-key-secret instead of --auth-token, the
request is signed as Twilio signs with a shared key (providers.md 1.3b):
X-Twilio-Webhooks-Signature-Settings: key=<id>,algorithm=HMAC_SHA256 and
X-Twilio-Signature = base64(HMAC-SHA256(the key's secret, the same string)).
The account must hold that key (its shared_keys).

Inbound WhatsApp message (the parameters Twilio sends for one):

    scripts/twilio-webhook.py --url http://127.0.0.1:3000/webhooks/twilio/AC... \\
        --auth-token TOKEN --account-sid AC... \\
        --from whatsapp:+15551234567 --to whatsapp:+14155238886 --body 'Hello' \\
        --profile-name 'Jane Doe' --media https://example.com/a.jpg:image/jpeg

Inbound SMS (--sms: bare E.164 numbers, no whatsapp: prefix; To is one of
the account's sms_numbers), signed with a shared key:

    scripts/twilio-webhook.py --url ... --account-sid AC... --sms \\
        --shared-key-id SK... --shared-key-secret SECRET \\
        --from +15551234567 --to +14155550100 --body 'STOP'

Status callback for a sent message (with --sms for a sent SMS):

    scripts/twilio-webhook.py --url ... --auth-token TOKEN --account-sid AC... \\
        --status delivered --message-sid SM...   [--error-code 63016]

--self-test checks the signing against providers.md's vectors; stdlib only.
"""

import argparse
import base64
import hashlib
import hmac
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request


def signed_string(url, params):
    """What Twilio signs: the URL, then each distinct (name, value) pair in order."""
    data = url
    for name in sorted({name for name, _ in params}):
        for value in sorted({value for other, value in params if other == name}):
            data += name + value
    return data


def signature(auth_token, url, params):
    """X-Twilio-Signature of a form POST of `params` (name, value pairs) to `url`."""
    digest = hmac.new(auth_token.encode(), signed_string(url, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def shared_key_signature(secret, url, params):
    """X-Twilio-Signature of the same POST signed with a shared key's secret."""
    digest = hmac.new(secret.encode(), signed_string(url, params).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def shared_key_settings(key_id):
    """X-Twilio-Webhooks-Signature-Settings of a request signed with shared key `key_id`."""
    return f"key={key_id},algorithm=HMAC_SHA256"


def sms_segments(text):
    """How many parts Twilio reports for an SMS of `text` (GSM-7 vs UCS-2, roughly)."""
    per_part, single = (153, 160) if all(ord(c) < 128 for c in text) else (67, 70)
    return 1 if len(text) <= single else -(-len(text) // per_part)


def random_sid(prefix):
    return prefix + secrets.token_hex(16)


def message_params(args):
    """What Twilio posts for an inbound WhatsApp (or, with --sms, SMS) message."""
    sid = args.message_sid or random_sid("SM")
    params = [
        ("MessageSid", sid),
        ("SmsSid", sid),
        ("SmsMessageSid", sid),
        ("AccountSid", args.account_sid),
        ("From", args.from_),
        ("To", args.to),
        ("Body", args.body),
        ("NumMedia", str(len(args.media))),
        ("NumSegments", str(sms_segments(args.body)) if args.sms else "1"),
        ("SmsStatus", "received"),
        ("ApiVersion", "2010-04-01"),
    ]
    for n, (url, content_type) in enumerate(args.media):
        params.append((f"MediaUrl{n}", url))
        params.append((f"MediaContentType{n}", content_type))
    if args.profile_name is not None:
        params.append(("ProfileName", args.profile_name))
    wa_id = "".join(c for c in args.from_ if c.isdigit())
    if args.from_.startswith("whatsapp:") and wa_id:
        params.append(("WaId", wa_id))
    return params


def status_params(args):
    """What Twilio posts for a status callback."""
    params = [
        ("MessageSid", args.message_sid),
        ("SmsSid", args.message_sid),
        ("MessageStatus", args.status),
        ("SmsStatus", args.status),
        ("AccountSid", args.account_sid),
        ("ApiVersion", "2010-04-01"),
    ]
    if args.from_:
        params.append(("From", args.from_))
    if args.to:
        params.append(("To", args.to))
    if args.error_code:
        params.append(("ErrorCode", args.error_code))
    return params


def media(value):
    """URL:CONTENT_TYPE; the URL has colons of its own, so split at the last one."""
    url, sep, content_type = value.rpartition(":")
    if not sep or not url or "/" not in content_type:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not URL:CONTENT_TYPE (e.g. https://example.com/a.jpg:image/jpeg)"
        )
    return url, content_type


def post(url, params, signed_headers):
    body = urllib.parse.urlencode(params).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "TwilioProxy/1.1",
            **signed_headers,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def self_test():
    base = "https://mycompany.com/myapp.php?foo=1&bar=2"
    sdk = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ]
    duplicates = [
        ("Sid", "CA123"),
        ("SidAccount", "AC123"),
        ("Digits", "5678"),
        ("Digits", "1234"),
        ("Digits", "1234"),
    ]
    whatsapp_body = (
        "SmsMessageSid=SM11111111111111111111111111111111&NumMedia=0&ProfileName=Jane+Doe"
        "&MessageType=text&SmsSid=SM11111111111111111111111111111111&WaId=15551234567"
        "&SmsStatus=received&Body=Hello+%F0%9F%91%8B&To=whatsapp%3A%2B14155238886"
        "&NumSegments=1&ReferralNumMedia=0&MessageSid=SM11111111111111111111111111111111"
        "&AccountSid=AC00000000000000000000000000000000&From=whatsapp%3A%2B15551234567"
        "&ApiVersion=2010-04-01"
    )
    whatsapp = urllib.parse.parse_qsl(whatsapp_body, keep_blank_values=True)
    vectors = [
        ("base", base, sdk, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("duplicate keys", base, duplicates, "IK+Dwps556ElfBT0I3Rgjkr1wJU="),
        (
            "whatsapp",
            "https://gateway.example.com/webhooks/twilio/whatsapp",
            whatsapp,
            "q3te/R1PDnimtjK/OpI0vuItbbY=",
        ),
        ("shared key (HMAC-SHA256)", base, sdk, "033hgUJA9M/hXIZsYjwkerEP/DBm35nEri5FhCYjA5s="),
    ]
    failed = 0
    for name, url, params, expected in vectors:
        sign = shared_key_signature if name.startswith("shared key") else signature
        got = sign("12345", url, params)
        ok = got == expected
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} {name}: {got}" + ("" if ok else f" (expected {expected})"))
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(
        description="Sign and POST a Twilio webhook (inbound message or status callback).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--self-test", action="store_true", help="check the signing against known vectors and exit")
    parser.add_argument("--url", help="where to POST, e.g. http://127.0.0.1:3000/webhooks/twilio/AC...")
    parser.add_argument("--public-url", help="the URL to sign when it differs from --url (public_base_url + path)")
    parser.add_argument("--auth-token", help="the account's primary auth token (or sign with a shared key)")
    parser.add_argument("--shared-key-id", help="sign with this shared key of the account instead of the auth token")
    parser.add_argument("--shared-key-secret", help="the shared key's secret (with --shared-key-id)")
    parser.add_argument(
        "--sms", action="store_true",
        help="an SMS (or its status callback): bare E.164 numbers, no whatsapp: prefix, no WhatsApp profile",
    )
    parser.add_argument("--account-sid", default="AC" + "0" * 32, help="AccountSid (default AC000...)")
    parser.add_argument(
        "--from", dest="from_", metavar="FROM", default="",
        help="From, e.g. whatsapp:+15551234567 (with --sms: +15551234567)",
    )
    parser.add_argument("--to", default="", help="To, e.g. whatsapp:+14155238886 (with --sms: +14155550100)")
    parser.add_argument("--body", default="", help="Body (may be empty for media-only)")
    parser.add_argument("--profile-name", help="ProfileName (WhatsApp display name)")
    parser.add_argument(
        "--media", type=media, action="append", default=[], metavar="URL:CONTENT_TYPE",
        help="a media item (repeatable)",
    )
    parser.add_argument("--message-sid", help="MessageSid (default: a random SM + 32 hex; required with --status)")
    parser.add_argument("--status", help="send a status callback with this MessageStatus instead of a message")
    parser.add_argument("--error-code", help="ErrorCode of a status callback")
    args = parser.parse_args()

    if args.self_test:
        return self_test()
    missing = [] if args.url else ["--url"]
    with_key = args.shared_key_id or args.shared_key_secret
    if with_key:
        if args.auth_token:
            parser.error("sign with --auth-token or with --shared-key-id/--shared-key-secret, not both")
        missing += [
            flag
            for flag, value in (("--shared-key-id", args.shared_key_id), ("--shared-key-secret", args.shared_key_secret))
            if not value
        ]
    elif not args.auth_token:
        missing.append("--auth-token (or --shared-key-id and --shared-key-secret)")
    if args.sms:
        if args.profile_name is not None:
            parser.error("--profile-name is WhatsApp's; an SMS has none")
        for flag, number in (("--from", args.from_), ("--to", args.to)):
            if number and not (number.startswith("+") and number[1:].isdigit()):
                parser.error(f"{flag} {number!r}: with --sms, a bare E.164 number such as +15551234567 (no whatsapp: prefix)")
    if args.status:
        if not args.message_sid:
            missing.append("--message-sid")
    else:
        missing += [flag for flag, value in (("--from", args.from_), ("--to", args.to)) if not value]
        if args.error_code:
            parser.error("--error-code only goes with --status")
    if missing:
        parser.error("missing " + ", ".join(missing))

    params = status_params(args) if args.status else message_params(args)
    signed_url = args.public_url or args.url
    if with_key:
        signed_headers = {
            "X-Twilio-Webhooks-Signature-Settings": shared_key_settings(args.shared_key_id),
            "X-Twilio-Signature": shared_key_signature(args.shared_key_secret, signed_url, params),
        }
    else:
        signed_headers = {"X-Twilio-Signature": signature(args.auth_token, signed_url, params)}
    print(f"POST {args.url}")
    if args.public_url:
        print(f"signed for {args.public_url}")
    for name, value in signed_headers.items():
        print(f"{name}: {value}")
    try:
        status, body = post(args.url, params, signed_headers)
    except (urllib.error.URLError, OSError) as error:
        print(f"request failed: {error}", file=sys.stderr)
        return 2
    print(f"HTTP {status}")
    print(body)
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
