"""The watch (issue 14): ``check`` says what is new or recovered, alerts once on change, keeps history.

Alerts go to a real HTTP receiver on 127.0.0.1 (and e-mail to a local SMTP server); expected
figures come from queries written here against player_game_summary, not from the program's output.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import threading
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from backfill import cli
from backfill.alerts import AlertSecrets, load_secrets
from backfill.faults import is_transient
from backfill.history import HistoryStore, coverage_over_time, gap_episodes
from backfill.launch import run_here
from backfill.ledger.tables import alerts as alerts_table
from backfill.request import BackfillRequest
from backfill.watch import run_check

ROOT = Path(__file__).resolve().parents[1]

# A clean week of the demo (no gap, no stale row) and a date in it that had games.
WEEK = (dt.date(2022, 1, 3), dt.date(2022, 1, 9))
DAY = dt.date(2022, 1, 5)
TOKEN = "T0KEN-do-not-log"


class Receiver:
    """A webhook receiver on a free loopback port; answers scripted statuses, then 200."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.requests: list[tuple[int, dict]] = []  # (status answered, JSON body)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.requests.append((status, body))
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{TOKEN}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def delivered(self) -> list[dict]:
        """Bodies the receiver accepted (answered 200)."""
        return [body for status, body in self.requests if status == 200]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(statuses=()):
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for server in made:
        server.close()


@pytest.fixture
def check(settings, tmp_path, capsys, monkeypatch):
    """``python -m backfill check`` in-process on the private demo copy: (exit code, stdout, stderr)."""
    monkeypatch.setenv("BACKFILL_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
    monkeypatch.delenv("BACKFILL_ALERT_WEBHOOK_URL", raising=False)

    def check(*argv: str, webhook: str | None = None, environ: dict[str, str] | None = None):
        if webhook is not None:
            monkeypatch.setenv("BACKFILL_ALERT_WEBHOOK_URL", webhook)
        isolated = {
            "BACKFILL_CONFIG": os.devnull,
            "BACKFILL_WAREHOUSE": settings.warehouse,
            "BACKFILL_LEDGER": settings.ledger,
            "BACKFILL_ALERT_RETRY_DELAYS": "0,0,0",
            **(environ or {}),
        }
        code = cli.main(["check", *argv], environ=isolated)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return check


def _week(*extra: str) -> list[str]:
    return ["--start", WEEK[0].isoformat(), "--end", WEEK[1].isoformat(), *extra]


def _players(demo, day: dt.date) -> int:
    """Players of a date, counted straight from player_game_summary."""
    return int(
        demo.query("SELECT COUNT(DISTINCT player_lookup) AS n FROM {pgs} WHERE game_date = @d", {"d": day})
        .iloc[0]
        .n
    )


def _delete_predictions(demo, day: dt.date) -> None:
    demo.execute("DELETE FROM {pred} WHERE game_date = @d", {"d": day})


# -- the sequence -----------------------------------------------------------------------


def test_a_deleted_date_is_alerted_once_with_its_link_and_resolved_once_after_a_backfill(
    check, receiver, demo, settings
):
    hook = receiver()
    assert _players(demo, DAY) > 0  # the demo played that day
    code, out, _ = check(*_week(), webhook=hook.url)
    assert code == 0, out
    assert hook.requests == []  # a clean week: nothing to say

    _delete_predictions(demo, DAY)
    code, out, _ = check(*_week(), webhook=hook.url)
    assert code == 1
    (alert,) = hook.delivered
    text = alert["text"]
    assert set(alert) == {"text"}  # Slack's body by default
    assert f"{DAY} predictions missing" in text
    assert f"0 of {_players(demo, DAY)} player-games" in text
    assert f"http://localhost:8501/coverage?date={DAY}" in text

    code, _, _ = check(*_week(), webhook=hook.url)
    assert code == 1  # still open...
    assert len(hook.requests) == 1  # ...but reported already

    request = BackfillRequest.build(settings, dates=[DAY], stages="predictions")
    result = run_here(settings, request, "tester", warehouse=demo)
    assert result.status == "succeeded"

    code, out, _ = check(*_week(), webhook=hook.url)
    assert code == 0, out
    assert len(hook.delivered) == 2
    resolved = hook.delivered[-1]["text"]
    assert "Resolved:" in resolved and f"{DAY} predictions back to ok" in resolved
    assert "New:" not in resolved

    code, _, _ = check(*_week(), webhook=hook.url)
    assert (code, len(hook.requests)) == (0, 2)

    # The history: the gap appeared at the second check and the backfill's run fixed it.
    store = HistoryStore.of(settings)
    checks = store.list_checks(settings.warehouse)
    assert list(checks["exit_code"])[::-1] == [0, 1, 1, 0, 0]
    (episode,) = gap_episodes(store.snapshots(settings.warehouse)).itertuples()
    assert (episode.game_date, episode.stage, episode.status) == (DAY, "predictions", "missing")
    assert episode.appeared_in == f"check {checks.iloc[3]['check_id']}"
    assert episode.fixed_by == f"run {result.run_id}"
    assert episode.fixed_pct == 100.0


def test_a_receiver_failing_twice_gets_the_alert_once_and_the_check_keeps_its_exit_code(
    receiver, demo, settings
):
    hook = receiver(statuses=[500, 500])
    waits: list[float] = []
    _delete_predictions(demo, DAY)
    result = run_check(
        settings, demo, *WEEK, who="cron", secrets=AlertSecrets(webhook_url=hook.url), sleep=waits.append
    )
    assert result.exit_code == 1
    assert [status for status, _ in hook.requests] == [500, 500, 200]
    assert len(hook.delivered) == 1
    (delivery,) = result.deliveries
    assert (delivery.status, delivery.attempts) == ("sent", 3)
    assert len(waits) == 2 and waits[0] >= settings.alert_retry_delays[0]  # the policy's delays, not slept
    (recorded,) = HistoryStore.of(settings).alerts(result.check_id).itertuples()
    assert (recorded.status, recorded.attempts) == ("sent", 3)


def test_a_delivery_that_keeps_failing_is_recorded_without_the_secret_and_never_fails_the_check(
    check, receiver, demo, settings
):
    hook = receiver(statuses=[503] * 10)
    code, out, err = check(*_week(), webhook=hook.url)
    assert code == 0  # a clean week, and no alert to send
    _delete_predictions(demo, DAY)
    code, out, err = check(*_week(), webhook=hook.url)
    assert code == 4  # not delivered: its own exit code, apart from 1 (problems found)
    assert len(hook.requests) == settings.max_attempts
    assert "not delivered after 4 attempts" in err and "HTTP Error 503" in err
    assert err.count("\n") == 1 and TOKEN not in out + err
    engine = sa.create_engine(f"sqlite:///{settings.ledger}")
    with engine.connect() as connection:
        rows = connection.execute(sa.select(alerts_table)).mappings().all()
        dumped = "\n".join(line for line in connection.connection.iterdump())
    engine.dispose()
    assert [(row["status"], row["attempts"]) for row in rows] == [("failed", settings.max_attempts)]
    assert "503" in rows[0]["error"]
    assert TOKEN not in dumped  # nowhere in the ledger database

    # Nobody heard of the gap, so the next check sends it again, and only once.
    working = receiver()
    check(*_week(), webhook=working.url)
    (alert,) = working.delivered
    assert f"New:\n- {DAY} predictions missing" in alert["text"]
    check(*_week(), webhook=working.url)
    assert len(working.requests) == 1


def test_a_404_is_not_retried(receiver, demo, settings):
    hook = receiver(statuses=[404])
    _delete_predictions(demo, DAY)
    result = run_check(
        settings, demo, *WEEK, who="cron", secrets=AlertSecrets(webhook_url=hook.url), sleep=lambda s: None
    )
    (delivery,) = result.deliveries
    assert (delivery.status, delivery.attempts, len(hook.requests)) == ("failed", 1, 1)


def test_a_generic_receiver_gets_the_findings_as_json(receiver, demo, settings):
    hook = receiver()
    _delete_predictions(demo, DAY)
    run_check(
        settings.replace(alert_webhook_format="json", console_url="https://console.example.org/"),
        demo,
        *WEEK,
        who="cron",
        secrets=AlertSecrets(webhook_url=hook.url),
    )
    (body,) = hook.delivered
    (new,) = body["new"]
    assert (new["game_date"], new["subject"]) == (DAY.isoformat(), "predictions")
    assert new["status"] == "missing" and new["total"] == _players(demo, DAY)
    assert new["link"] == f"https://console.example.org/coverage?date={DAY}"
    assert body["resolved"] == []


def test_a_stage_newly_blocked_is_reported_as_a_change(receiver, demo, settings):
    hook = receiver()
    secrets = AlertSecrets(webhook_url=hook.url)
    _delete_predictions(demo, DAY)
    run_check(settings, demo, *WEEK, who="cron", secrets=secrets)
    # Most of the date's MLFS goes too: its predictions are now blocked by the gate.
    demo.execute(
        "DELETE FROM {mlfs} WHERE game_date = @d AND player_lookup IN "
        "(SELECT player_lookup FROM {mlfs} WHERE game_date = @d ORDER BY player_lookup LIMIT @n)",
        {"d": DAY, "n": _players(demo, DAY) // 2},
    )
    result = run_check(settings, demo, *WEEK, who="cron", secrets=secrets, fail_on="new")
    changes = {(f.subject, f.change, f.status, f.previous_status) for f in result.findings}
    assert ("predictions", "changed", "blocked", "missing") in changes
    assert ("mlfs", "new", "partial", None) in changes
    assert result.exit_code == 1
    assert f"{DAY} predictions blocked (was missing)" in hook.delivered[-1]["text"]


def test_fail_on_new_exits_0_while_a_reported_problem_stays_open(check, demo):
    _delete_predictions(demo, DAY)
    code, _, err = check(*_week("--fail-on", "new"))
    assert code == 1 and "no alert channel is configured" in err
    code, _, err = check(*_week("--fail-on", "new"))
    assert code == 0 and err == ""  # nothing new: nothing to tell
    assert check(*_week("--fail-on", "open"))[0] == 1


def test_a_check_of_another_window_in_between_does_not_make_a_gap_new_again(check, receiver, demo):
    hook = receiver()
    _delete_predictions(demo, DAY)
    check(*_week(), webhook=hook.url)
    check("--start", "2021-12-01", "--end", "2021-12-31", webhook=hook.url)  # the incident's own gaps
    assert len(hook.delivered) == 2
    code, out, _ = check(*_week(), webhook=hook.url)
    assert code == 1 and len(hook.requests) == 2
    assert "open" in out and "new " not in out


def test_stale_rows_that_appear_are_new_and_their_deletion_recovers_them(check, receiver, demo, settings):
    hook = receiver()
    check(*_week(), webhook=hook.url)
    demo.execute(
        "INSERT INTO {pred} SELECT * FROM {pred} WHERE game_date = @d ORDER BY player_lookup, system_id LIMIT 3",
        {"d": DAY},
    )
    code, out, _ = check(*_week(), webhook=hook.url)
    assert code == 1
    assert f"{DAY} 3 stale duplicate rows in player_prop_predictions" in hook.delivered[-1]["text"]
    from backfill.stale import delete_stale

    delete_stale(demo, settings, *WEEK)
    code, _, _ = check(*_week(), webhook=hook.url)
    assert code == 0
    assert "stale duplicate rows in player_prop_predictions: gone" in hook.delivered[-1]["text"]


def test_json_and_markdown_output(check, demo):
    _delete_predictions(demo, DAY)
    code, out, _ = check(*_week("--format", "json"))
    report = json.loads(out)
    assert (code, report["exit_code"], report["status"]) == (1, 1, "problems")
    (finding,) = report["findings"]
    assert (finding["game_date"], finding["subject"], finding["change"]) == (
        DAY.isoformat(),
        "predictions",
        "new",
    )
    assert (finding["covered"], finding["total"]) == (0, _players(demo, DAY))
    assert finding["link"].endswith(f"/coverage?date={DAY}")
    code, out, _ = check(*_week("--format", "markdown"))
    assert out.startswith("## Coverage check") and f"| open | [{DAY}](" in out


def test_e_mail_alert_through_a_local_smtp_server(demo, settings):
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        if os.environ.get("CI"):
            raise  # CI must run it: requirements-dev.txt pins aiosmtpd
        pytest.skip("aiosmtpd is not installed: pip install -r requirements-dev.txt")

    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            return "250 OK"

    with socket.socket() as probe:  # a free loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()  # returns once the server answers
    try:
        mail = settings.replace(
            alert_email_to=("oncall@example.org",), smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False
        )
        _delete_predictions(demo, DAY)
        result = run_check(mail, demo, *WEEK, who="cron", secrets=AlertSecrets())
    finally:
        controller.stop()
    (delivery,) = result.deliveries
    assert (delivery.channel, delivery.status, delivery.target) == ("email", "sent", "oncall@example.org")
    (envelope,) = received
    assert envelope.rcpt_tos == ["oncall@example.org"]
    body = envelope.content.decode()
    assert f"{DAY} predictions missing" in body and "Subject: Coverage check: 1 new problem" in body


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--since", "7d", "--start", "2022-01-03", "--end", "2022-01-09"], "not both"),
        (["--since", "a week"], "not a number of days"),
        (["--since", "0d"], "--since must be between"),
        (["--start", "2022-01-09", "--end", "2022-01-03"], "reversed"),
        (["--start", "2022-01-03"], "go together"),
        (["--start", "2022-13-01", "--end", "2022-01-09"], "not a date"),
        (["--start", "2099-01-01", "--end", "2099-01-02"], "in the future"),
        (["--fail-on", "sometimes"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_in_one_line_and_writes_nothing(check, settings, argv, message):
    code, out, err = check(*argv)
    assert code == 2
    assert message in err and err.count("\n") == 1
    assert not Path(settings.ledger).exists()


def test_bad_alert_settings_exit_2_before_anything_is_written(check, settings):
    code, _, err = check(*_week(), environ={"BACKFILL_ALERT_WEBHOOK_FORMAT": "teams"})
    assert code == 2 and "alert_webhook_format" in err
    code, _, err = check(*_week(), webhook=f"ftp://example.org/{TOKEN}")
    assert code == 2 and "not an http(s) URL" in err and TOKEN not in err
    assert not Path(settings.ledger).exists()


# -- pieces -------------------------------------------------------------------------------------


def test_secrets_come_from_the_environment_before_the_streamlit_secrets_file(tmp_path):
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text(
        '[alerts]\nwebhook_url = "https://hooks.example.org/file"\nsmtp_password = "pw"\n'
    )
    from_file = load_secrets({}, secrets_file)
    assert (from_file.webhook_url, from_file.smtp_password) == ("https://hooks.example.org/file", "pw")
    from_env = load_secrets({"BACKFILL_ALERT_WEBHOOK_URL": "https://hooks.example.org/env"}, secrets_file)
    assert from_env.webhook_url == "https://hooks.example.org/env"
    assert "hooks.example.org" not in repr(from_env) and "pw" not in repr(from_env)


@pytest.mark.parametrize(
    ("status", "transient"), [(500, True), (503, True), (429, True), (404, False), (400, False)]
)
def test_http_answers_of_a_receiver_are_classified_by_status(status, transient):
    error = urllib.error.HTTPError("http://127.0.0.1/x", status, "answer", {}, None)
    assert is_transient(error) is transient


def test_coverage_over_time_adds_up_the_latest_snapshot_of_each_date():
    at = [dt.datetime(2026, 1, d, tzinfo=dt.UTC) for d in (1, 2, 3)]
    rows = [
        # id, taken_at, date, status, covered, total
        (1, at[0], dt.date(2022, 1, 3), "ok", 100, 100),
        (2, at[0], dt.date(2022, 1, 5), "ok", 50, 50),
        (3, at[1], dt.date(2022, 1, 5), "missing", 0, 50),
        (4, at[2], dt.date(2022, 1, 5), "ok", 50, 50),
    ]
    snapshots = pd.DataFrame(
        [
            {"snapshot_id": i, "taken_at": t, "game_date": d, "stage": "predictions", "status": s}
            | {
                "covered": c,
                "total": n,
                "expected_pct": 100.0 * c / n,
                "source": "check",
                "source_id": str(i),
            }
            for i, t, d, s, c, n in rows
        ]
    )
    series = coverage_over_time(snapshots, by="period")
    assert list(series["covered"]) == [150, 100, 150]
    assert list(series["total"]) == [150, 150, 150]
    assert list(series["gap_dates"]) == [0, 1, 0]
    episodes = gap_episodes(snapshots)
    assert list(episodes["fixed_by"]) == ["check 4"]


def test_a_snapshot_keeps_only_the_dates_whose_figures_changed(demo, settings):
    secrets = AlertSecrets()
    run_check(settings, demo, *WEEK, who="cron", secrets=secrets)
    store = HistoryStore.of(settings)
    first = store.snapshots(settings.warehouse)
    assert len(first) == 7 * first["stage"].nunique()  # every date of the week, once per stage
    run_check(settings, demo, *WEEK, who="cron", secrets=secrets)
    assert len(store.snapshots(settings.warehouse)) == len(first)  # nothing changed, nothing stored
    _delete_predictions(demo, DAY)
    run_check(settings, demo, *WEEK, who="cron", secrets=secrets)
    latest = store.snapshots(settings.warehouse).iloc[len(first) :]
    assert list(zip(latest["game_date"], latest["stage"], latest["status"])) == [
        (DAY, "predictions", "missing")
    ]


# -- could not check (issue 23) -------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends: nothing listens there


@pytest.mark.parametrize(
    ("what", "environ", "said"),
    [
        ("a warehouse file that is gone", {"BACKFILL_WAREHOUSE": "gone/warehouse.duckdb"}, "does not exist"),
        (
            "an unreachable ledger",
            {"BACKFILL_LEDGER": f"postgresql://team@127.0.0.1:{_closed_port()}/ledger"},
            "cannot reach the run ledger",
        ),
    ],
)
def test_a_check_that_cannot_run_exits_3_in_one_line_apart_from_problems_found(check, what, environ, said):
    code, out, err = check(*_week(), environ=environ)
    assert code == 3, what
    assert err.startswith("error: could not check: ") and err.count("\n") == 1 and said in err
    assert out == ""


def test_the_readmes_cron_line_fails_only_when_the_check_could_not_run(settings, tmp_path):
    # The README's cron line: "check ... >/dev/null || [ $? -eq 1 ]": problems found (1) are the
    # alert's business; a check that could not run (3) fails the cron job, which mails its error.
    line = re.search(r"0 7 \* \* \*  cd /srv/console && (.*)", (ROOT / "README.md").read_text())
    assert line is not None
    command = line.group(1).replace("BACKFILL_WAREHOUSE=bigquery://my-project ", "")
    command = command.replace(".venv/bin/python", sys.executable)
    environment = os.environ | {
        "PYTHONPATH": str(ROOT),
        "BACKFILL_CONFIG": os.devnull,
        "BACKFILL_LEDGER": settings.ledger,
        "BACKFILL_SECRETS_FILE": str(tmp_path / "no-secrets.toml"),
    }
    environment.pop("BACKFILL_ALERT_WEBHOOK_URL", None)
    december = command.replace("--since 7d", "--start 2021-12-01 --end 2021-12-31")
    problems = subprocess.run(
        ["sh", "-c", december], cwd=ROOT, env=environment | {"BACKFILL_WAREHOUSE": settings.warehouse},
        capture_output=True, text=True,
    )  # fmt: skip
    assert problems.returncode == 0, problems.stderr  # the demo's December gaps: exit 1 inside, fine outside
    broken = subprocess.run(
        ["sh", "-c", december], cwd=ROOT, env=environment | {"BACKFILL_WAREHOUSE": str(tmp_path / "gone.duckdb")},
        capture_output=True, text=True,
    )  # fmt: skip
    assert broken.returncode != 0 and "could not check" in broken.stderr
