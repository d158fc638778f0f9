"""`make run`: the whole stack on one machine, stopped by one Ctrl-C.

Starts an embedded Redis when neither REDIS_URL nor CELERY_BROKER_URL is set, migrates,
creates a development superuser (printed once), then runs web, worker, beat and Flower
under honcho. When honcho exits (Ctrl-C, or any process dying) the embedded Redis is
stopped too.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from devstack.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"


def flower_credentials() -> str:
    """FLOWER_BASIC_AUTH from the environment, else one generated once and kept in var/."""
    if os.environ.get("FLOWER_BASIC_AUTH"):
        return os.environ["FLOWER_BASIC_AUTH"]
    stored = VAR / "flower-basic-auth"
    if not stored.exists():
        stored.write_text(f"flower:{secrets.token_urlsafe(12)}\n")
        stored.chmod(0o600)
    return stored.read_text().strip()


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def main() -> int:
    VAR.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.setdefault("DEBUG", "1")
    env.setdefault("WEB_PORT", "8000")
    env.setdefault("FLOWER_PORT", "5555")
    # The dashboard's Flower link (TASKS_FLOWER_URL in project/settings.py).
    env.setdefault("FLOWER_URL", f"http://127.0.0.1:{env['FLOWER_PORT']}/")
    env["FLOWER_BASIC_AUTH"] = flower_credentials()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"

    redis: RedisServer | None = None
    if not env.get("REDIS_URL") and not env.get("CELERY_BROKER_URL"):
        taken = {int(env["WEB_PORT"]), int(env["FLOWER_PORT"])}
        port = int(env.get("EMBEDDED_REDIS_PORT") or free_port(avoid=taken))
        data_dir = Path(env.get("EMBEDDED_REDIS_DIR") or VAR / "redis")
        redis = RedisServer(port=port, data_dir=data_dir, persistent=True).start()
        env["REDIS_URL"] = redis.url
    try:
        manage(env, "migrate", "--no-input", "-v", "0")
        manage(env, "ensure_dev_superuser")
        user = env["FLOWER_BASIC_AUTH"].split(":", 1)[0]
        print(
            "\n".join(
                [
                    "",
                    f"  Demo:    http://127.0.0.1:{env['WEB_PORT']}/demo/",
                    f"  Dashboard: http://127.0.0.1:{env['WEB_PORT']}/dashboard/",
                    f"  Admin:   http://127.0.0.1:{env['WEB_PORT']}/admin/tasklayer/job/",
                    f"  Flower:  http://127.0.0.1:{env['FLOWER_PORT']}/  "
                    f"(user {user!r}, password in var/flower-basic-auth or FLOWER_BASIC_AUTH)",
                    f"  Broker:  {env.get('CELERY_BROKER_URL') or env['REDIS_URL']}"
                    + (" (embedded, stopped with Ctrl-C)" if redis else ""),
                    "  Ctrl-C stops everything.",
                    "",
                ]
            ),
            flush=True,
        )
        honcho = subprocess.Popen(
            [sys.executable, "-m", "honcho", "-f", "Procfile.dev", "-d", str(ROOT), "start"],
            cwd=ROOT,
            env=env,
        )
        # Ctrl-C reaches honcho directly (same process group); it stops its processes.
        # Here it only means "wait for honcho, then clean up".
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: honcho.send_signal(signal.SIGTERM))
        return honcho.wait()
    finally:
        if redis is not None:
            redis.stop()


if __name__ == "__main__":
    sys.exit(main())
