"""Creates the fuzzing accounts on a fresh server: superusers and users without any permission.

Usage: accounts.py BASE ADMIN_PASSWORD PASSWORD; prints `superusers=...` and `users=...` lines of `name:password` lists.
"""

import json
import sys
import urllib.request

BASE, ADMIN_PASSWORD, PASSWORD = sys.argv[1:4]
RESERVES = 4


def call(method, path, body, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(BASE + path, data=json.dumps(body).encode(), headers=headers, method=method)
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)


token = call("POST", "/api/v1/auth/login/", {"username": "admin", "password": ADMIN_PASSWORD})["token"]
for kind, superuser in (("superusers", True), ("users", False)):
    names = []
    for n in range(RESERVES):
        name = f"fuzz-{kind}-{n}"
        user = {"username": name, "password": PASSWORD, "email": f"{name}@example.com", "groups": [], "is_superuser": superuser}
        call("POST", "/api/v1/users/", user, token)
        names.append(f"{name}:{PASSWORD}")
    print(f"{kind}={','.join(names)}")
