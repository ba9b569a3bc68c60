"""Verifies the DKIM signature of each message file given, with dkimpy (an
implementation independent of sluice's signer). The key record that DNS
would hold for the signature's selector and domain is read from a file,
and is given for that one name only: a signature naming another domain
or selector fails.

    dkim_verify.py RECORD_FILE SELECTOR._domainkey.DOMAIN MESSAGE...

Prints one line per message; exits 1 if any fails to verify.
"""

import sys

import dkim


def main() -> None:
    record_file, name, *messages = sys.argv[1:]
    with open(record_file, "rb") as f:
        record = f.read().strip()
    expected = name.rstrip(".").lower()

    def dns(queried, timeout=5):
        queried = queried.decode() if isinstance(queried, bytes) else queried
        return record if queried.rstrip(".").lower() == expected else b""

    failed = 0
    for path in messages:
        with open(path, "rb") as f:
            verified = dkim.verify(f.read(), dnsfunc=dns)
        print(f"{path}: {'pass' if verified else 'FAIL'}")
        failed += not verified
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
