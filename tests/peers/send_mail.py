#!/usr/bin/env python3
"""Delivers one message over SMTP with Python's smtplib, as a remote MTA
returning a bounce would: null sender, one recipient. Prints the server's
final reply code, or the refusal, on stdout."""
import argparse
import smtplib
import sys

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--rcpt", required=True)
p.add_argument("--file", required=True)
args = p.parse_args()
data = open(args.file, "rb").read()
with smtplib.SMTP("127.0.0.1", args.port, timeout=30) as s:
    try:
        s.sendmail("<>", [args.rcpt], data)
        print("250")
    except smtplib.SMTPRecipientsRefused as e:
        print(list(e.recipients.values())[0][0])
    except smtplib.SMTPDataError as e:
        print(e.smtp_code)
