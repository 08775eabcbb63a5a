"""A labelled corpus for the guardrail detectors, written as JSON lines to stdout.

Each line is {"text": ..., "labels": [{"class": ..., "value": ...}], "kind": ...}: every value
of a class the detectors should find, exactly as it appears in the text. Three parts, all from
fixed seeds so every run writes the same corpus:

- structured PII from Faker in eight locales (emails, phone numbers, credit cards, IBANs, US
  SSNs, IPv4 and IPv6 addresses) inside sentences, forms, CSV rows and JSON records;
- secrets of every kind the gateway knows (AWS access keys, GitHub, GitLab and Slack tokens,
  OpenAI and Anthropic keys, PEM private keys, JWTs, passwords and secrets assigned in code
  and config) inside code and config snippets, generated in their real formats;
- a negative corpus with no PII at all: code, logs and prose full of UUIDs, hashes, version
  numbers, ordinary numbers, dates, times, durations, ports and words such as "password"
  without a value.

Usage: python guard_corpus.py [--per-locale N] [--secrets N] [--negatives N]
"""

import argparse
import base64
import hashlib
import json
import random
import string
import uuid

from faker import Faker

LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "nl_NL", "ja_JP", "pt_BR"]
SEED = 1616

ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + "234567"
B64URL = ALNUM + "-_"


def out(text, labels, kind):
    for label in labels:
        assert label["value"] in text, (label, text)
    print(json.dumps({"text": text, "labels": labels, "kind": kind}, ensure_ascii=False))


def lab(cls, value):
    return {"class": cls, "value": value}


# --- PII ---------------------------------------------------------------------------------

PII_TEMPLATES = [
    "Hi team, please reach {name} at {email} or {phone} about the refund.",
    "Customer: {name}\nEmail: {email}\nPhone: {phone}\nCard: {card}\n",
    "{name},{email},{phone},{iban}\n",
    '{{"customer": "{name}", "contact": {{"email": "{email}", "tel": "{phone}"}}, "iban": "{iban}"}}',
    "Payment from {name} (IBAN {iban}) failed; card {card} was declined. Client IP {ipv4}.",
    "Login for {email} from {ipv6} at 09:14, session moved to {ipv4}.",
    "Bitte überweisen Sie auf {iban}. Rückfragen: {phone}, {email}.",
    "Envoyé depuis {ipv4} par {name} <{email}>. Tél. {phone}",
]


def card_number(fake, rng):
    number = fake.credit_card_number()
    style = rng.random()
    if len(number) == 16 and style < 0.3:
        return " ".join(number[i : i + 4] for i in range(0, 16, 4))
    if len(number) == 16 and style < 0.5:
        return "-".join(number[i : i + 4] for i in range(0, 16, 4))
    return number


def iban_of(fake, rng):
    iban = fake.iban()
    if rng.random() < 0.3:
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


def pii(per_locale):
    rng = random.Random(SEED)
    for loc in LOCALES:
        fake = Faker(loc)
        fake.seed_instance(SEED)
        for i in range(per_locale):
            values = {
                "name": fake.name(),
                "email": fake.email(),
                "phone": fake.phone_number(),
                "card": card_number(fake, rng),
                "iban": iban_of(fake, rng),
                "ipv4": fake.ipv4_public(),
                "ipv6": fake.ipv6(),
            }
            template = PII_TEMPLATES[i % len(PII_TEMPLATES)]
            text = template.format(**values)
            labels = [
                lab(cls, values[key])
                for key, cls in [
                    ("email", "email"),
                    ("phone", "phone"),
                    ("card", "credit_card"),
                    ("iban", "iban"),
                    ("ipv4", "ipv4"),
                    ("ipv6", "ipv6"),
                ]
                if "{" + key + "}" in template
            ]
            out(text, labels, f"pii/{loc}")
    fake = Faker("en_US")
    fake.seed_instance(SEED)
    for i in range(per_locale * 2):
        ssn = fake.ssn()
        forms = [
            f"SSN: {ssn}",
            f"Applicant {fake.name()} (SSN {ssn}) born {fake.date_of_birth().isoformat()}.",
            f'{{"name": "{fake.name()}", "ssn": "{ssn}"}}',
        ]
        out(forms[i % 3], [lab("us_ssn", ssn)], "pii/en_US/ssn")


# --- secrets -----------------------------------------------------------------------------


def rand(rng, alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(rng, fake):
    header = {"alg": rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}
    payload = {"sub": str(rng.randrange(10**9)), "name": fake.name(), "iat": 1700000000 + rng.randrange(10**7)}
    sig = bytes(rng.randrange(256) for _ in range(rng.choice([32, 64, 256])))
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode()), b64url(sig)])


def pem(rng):
    kind = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY"])
    body = base64.b64encode(bytes(rng.randrange(256) for _ in range(rng.choice([120, 300, 600])))).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {kind}-----\n{lines}\n-----END {kind}-----"


def password(rng, fake):
    if rng.random() < 0.5:
        return fake.password(length=rng.choice([10, 12, 16, 20]))
    return rand(rng, ALNUM + "!@#$%^&*_-+=", rng.choice([12, 24, 32, 40]))


def secret_values(rng, fake):
    """(class, value) of one secret of each kind."""
    gh_prefix = rng.choice(["ghp", "gho", "ghu", "ghs", "ghr"])
    return [
        ("aws_access_key", rng.choice(["AKIA", "ASIA"]) + rand(rng, UPPER_DIGITS, 16)),
        ("github_token", f"{gh_prefix}_" + rand(rng, ALNUM, 36)),
        ("github_token", "github_pat_" + rand(rng, ALNUM, 22) + "_" + rand(rng, ALNUM, 59)),
        ("gitlab_token", "glpat-" + rand(rng, ALNUM + "-_", 20)),
        ("slack_token", rng.choice(["xoxb", "xoxp", "xoxa"]) + f"-{rng.randrange(10**11, 10**12)}-{rng.randrange(10**11, 10**12)}-" + rand(rng, ALNUM, 24)),
        ("slack_token", "https://hooks.slack.com/services/T" + rand(rng, UPPER_DIGITS, 8) + "/B" + rand(rng, UPPER_DIGITS, 8) + "/" + rand(rng, ALNUM, 24)),
        ("openai_key", "sk-proj-" + rand(rng, B64URL, 74) + "T3BlbkFJ" + rand(rng, B64URL, 74)),
        ("openai_key", "sk-" + rand(rng, ALNUM, 20) + "T3BlbkFJ" + rand(rng, ALNUM, 20)),
        ("anthropic_key", "sk-ant-api03-" + rand(rng, B64URL, 93) + "AA"),
        ("jwt", jwt(rng, fake)),
        ("private_key", pem(rng)),
        ("secret_assignment", password(rng, fake)),
    ]


SECRET_SNIPPETS = [
    # (template, where the value goes); `{v}` is the secret.
    'import boto3\nclient = boto3.client("s3", aws_access_key_id="{v}")\n',
    "export TOKEN_FOR_CI={v}\nnpm publish\n",
    "headers = {{'Authorization': 'Bearer {v}'}}\nrequests.get(url, headers=headers)\n",
    "# config.yaml\nservice:\n  url: https://api.example.com\n  credential: {v}\n",
    "const client = new Client({{ auth: \"{v}\" }});\n",
    "curl -H 'Authorization: token {v}' https://api.example.com/user\n",
    "[default]\nkey = {v}\nregion = eu-west-1\n",
    "let key = \"{v}\";\nlet client = Client::new(key);\n",
]

ASSIGNMENTS = [
    'DB_PASSWORD="{v}"\n',
    "password: {v}\n",
    'config["client_secret"] = "{v}"\n',
    '{{"api_key": "{v}", "endpoint": "https://api.example.com"}}\n',
    "spring.datasource.password={v}\n",
    "SECRET_KEY = '{v}'\n",
    "auth_token: \"{v}\"\n",
    "mysql -u admin --password={v} prod\n",
]


def secrets(n):
    rng = random.Random(SEED + 1)
    fake = Faker("en_US")
    fake.seed_instance(SEED + 1)
    for i in range(n):
        for cls, value in secret_values(rng, fake):
            if cls == "secret_assignment":
                text = ASSIGNMENTS[i % len(ASSIGNMENTS)].format(v=value)
            elif cls == "private_key":
                text = f"Here is the deploy key, keep it safe:\n{value}\nthanks"
            else:
                text = SECRET_SNIPPETS[(i + len(cls)) % len(SECRET_SNIPPETS)].format(v=value)
            out(text, [lab(cls, value)], f"secret/{cls}")


# --- negatives ---------------------------------------------------------------------------


def negatives(n):
    rng = random.Random(SEED + 2)
    fake = Faker("en_US")
    fake.seed_instance(SEED + 2)

    def version():
        return f"{rng.randrange(0, 20)}.{rng.randrange(0, 40)}.{rng.randrange(0, 200)}"

    def sha(kind):
        return hashlib.new(kind, str(rng.random()).encode()).hexdigest()

    def ts():
        return fake.date_time_between(start_date="-3y").isoformat(sep=" ", timespec="seconds")

    makers = [
        lambda: f"Released v{version()} on {fake.date_this_decade().isoformat()}; see commit {sha('sha1')[:12]}.",
        lambda: f"{ts()} INFO request_id={uuid.UUID(int=rng.getrandbits(128))} status=200 duration_ms={rng.randrange(1, 5000)} bytes={rng.randrange(100, 10**7)}",
        lambda: f"{ts()} WARN retrying job {rng.randrange(10**5)} (attempt {rng.randrange(1, 6)} of 5) after {rng.randrange(100, 9000)} ms",
        lambda: f"sha256: {sha('sha256')}\nmd5: {sha('md5')}\nsize: {rng.randrange(10**9)} bytes",
        lambda: f"def area(r):\n    return 3.14159265 * r ** 2  # v{version()}\n\nprint(area({rng.randrange(1, 1000)}))",
        lambda: f"fn main() {{\n    let items: Vec<u64> = (0..{rng.randrange(10, 10**6)}).collect();\n    println!(\"{{}}\", items.len());\n}}",
        lambda: f"Order #{rng.randrange(1000, 99999)} shipped {rng.randrange(1, 50)} items for ${rng.randrange(1, 99999)}.{rng.randrange(10, 99)} on {fake.date_this_year().strftime('%d.%m.%Y')}.",
        lambda: fake.paragraph(nb_sentences=4),
        lambda: f"Reset your password from the settings page; tokens expire after {rng.randrange(5, 90)} minutes.",
        lambda: 'password = os.environ["DB_PASSWORD"]\napi_key = get_api_key()\ntoken = None',
        lambda: "api_key: ${API_KEY}\nclient_secret: <your-client-secret>\npassword: changeme",
        lambda: f"server listening on localhost:{rng.randrange(1024, 65535)} with {rng.randrange(1, 64)} workers, pid {rng.randrange(100, 99999)}",
        lambda: f"SELECT id, total FROM orders WHERE created_at > '{fake.date_this_year().isoformat()}' LIMIT {rng.randrange(10, 1000)};",
        lambda: f"Build {rng.randrange(1000, 9999)} took {rng.randrange(1, 59)}m{rng.randrange(0, 59)}s; coverage {rng.randrange(50, 100)}.{rng.randrange(0, 9)}%, {rng.randrange(100, 5000)} tests passed.",
        lambda: f"uuid {uuid.UUID(int=rng.getrandbits(128))} mapped to {uuid.UUID(int=rng.getrandbits(128))}",
        lambda: f"Unix time {rng.randrange(1_600_000_000, 1_800_000_000)} is {ts()} UTC; in ms {rng.randrange(1_600_000_000_000, 1_800_000_000_000)}.",
        lambda: f"color: #{rng.randrange(0x1000000):06x}; margin: {rng.randrange(0, 40)}px {rng.randrange(0, 40)}px; z-index: {rng.randrange(1, 9999)};",
        lambda: f"docker pull registry.example.com/app:{version()}@sha256:{sha('sha256')}",
        lambda: f"The population grew from {rng.randrange(10**5, 10**7):,} to {rng.randrange(10**5, 10**7):,} between {rng.randrange(1900, 1990)} and {rng.randrange(1990, 2024)}.",
        lambda: f"std::vector<int> v({rng.randrange(1, 100)}); auto it = std::find(v.begin(), v.end(), {rng.randrange(100)});",
        lambda: f"Meeting moved to {fake.time(pattern='%H:%M')} on {fake.date_this_year().isoformat()}, room {rng.randrange(100, 999)}.",
        lambda: f"matrix = [[{rng.randrange(100)}, {rng.randrange(100)}], [{rng.randrange(100)}, {rng.randrange(100)}]]  # det = {rng.randrange(-1000, 1000)}",
    ]
    for i in range(n):
        out(makers[i % len(makers)](), [], "negative")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-locale", type=int, default=150)
    parser.add_argument("--secrets", type=int, default=120)
    parser.add_argument("--negatives", type=int, default=2200)
    args = parser.parse_args()
    pii(args.per_locale)
    secrets(args.secrets)
    negatives(args.negatives)


if __name__ == "__main__":
    main()
