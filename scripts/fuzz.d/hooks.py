"""Schemathesis hooks: log in again whenever the fuzzer has logged itself out or ended its own sessions.

The fuzzer calls every operation, among them logout, session revocation and password changes of its own account,
so a fixed token would leave the rest of the run answering 401. Each login tries the accounts of `FUZZ_ACCOUNTS`
(`name:password,...`) in turn, so a run goes on when one of them was deactivated or deleted by the fuzzer itself.
"""

import json
import os
import urllib.error
import urllib.request

import schemathesis

BASE = os.environ["FUZZ_BASE"]
ACCOUNTS = [entry.split(":", 1) for entry in os.environ["FUZZ_ACCOUNTS"].split(",")]


def login():
    for username, password in ACCOUNTS:
        request = urllib.request.Request(
            BASE + "/api/v1/auth/login/",
            data=json.dumps({"username": username, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request) as answer:
                return json.load(answer)["token"]
        except urllib.error.HTTPError:
            continue
    raise RuntimeError("none of the fuzzing accounts can log in")


@schemathesis.auth()
class Session:
    def get(self, case, ctx):
        return login()

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
