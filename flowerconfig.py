"""Flower reads this file (its default --conf) from the project root at start-up.

It refuses to start Flower without authentication: Flower's UI and API can revoke and
terminate tasks, so an open Flower is an open door. Credentials come from the
environment (FLOWER_BASIC_AUTH="user:password", or FLOWER_AUTH with an OAuth provider),
never from the command line, where `ps` would show them.
"""

import os

if not (os.environ.get("FLOWER_BASIC_AUTH") or os.environ.get("FLOWER_AUTH")):
    raise SystemExit(
        "Refusing to start Flower without authentication: set FLOWER_BASIC_AUTH=user:password "
        "(or FLOWER_AUTH with FLOWER_AUTH_PROVIDER)."
    )
