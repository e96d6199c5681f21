"""Versioned schema migrations of the state database. Append; never edit a released one.

The tables, for people who query the file directly:
- reconciliations: every attempt to apply a commit (applied, unchanged or rejected, with the error)
- applied_resources: the applied desired state, one row per resource, with its spec digest and commit
- runs: every backtest/run of a plan, with its commit, plan digest, outcome, statistics and notes
  (kind rehearsal: a run at a time that was not the present; its orders are REHEARSAL, never sent)
- equity, backtest_trades, backtest_fills: per-run results
- prices, price_ranges, price_history: the price cache, the date ranges it holds complete per
  source and ticker, and the history each plan's last run used (strict-mode change detection)
- price_checks: per source and ticker, the digest of a local file the cache last read whole and
  when a remote history was last fetched whole (edits to old bars are caught by either)
- ticks: durable schedule ticks (STARTED/FINISHED/FAILED/SKIPPED), never run twice
- orders, fills: orders with deterministic client ids and the fills recorded against them
- notifications: what was sent to whom, for dedup and audit
- plan_storage: each incremental plan's strategy `storage` dict, as JSON
- daemon_heartbeat: one row, the clock of the latest daemon pass (how long the daemon was away),
  and when the running daemon started and its poll interval (v8: `minitrade status --check`)
- run_results, result_heads: how a run's equity/trades/fills rows continue the plan's previous run
  (a run stores only what changed after it; see minitrade/store/runs.py), and each plan's latest
- plan_overrides: imperative overrides of the applied state, newest last (`minitrade suspend` /
  `resume`, and suspensions cleared when a plan's file says disabled): who, when and why; a plan is
  suspended while its latest row says `suspend`
- telegram_audit: every command the Telegram bot received (v9), from an allowed chat or not: chat id,
  command and arguments, outcome (answered, asked, done, declined, failed, expired, refused) and time
- optimizations, optimization_trials: `minitrade optimize` sweeps (plan, commit, method, metric,
  parameter space, constraints, walk-forward, executor, best parameters) and one row per trial
  (its parameters and every statistic as JSON, the ranked score, duration, worker, window, phase)
"""

from __future__ import annotations

V1 = """
CREATE TABLE reconciliations (
    id           BIGINT PRIMARY KEY,
    commit_sha   VARCHAR,
    dirty        BOOLEAN NOT NULL DEFAULT false,
    author_time  TIMESTAMPTZ,
    message      VARCHAR,
    attempted_at TIMESTAMPTZ NOT NULL,
    outcome      VARCHAR NOT NULL,          -- applied | unchanged | rejected
    error        VARCHAR,
    source       VARCHAR NOT NULL           -- apply | daemon
);
CREATE TABLE applied_resources (
    kind        VARCHAR NOT NULL,           -- settings | plan | strategy | data_source | broker | notifier
    name        VARCHAR NOT NULL,
    digest      VARCHAR NOT NULL,
    spec        VARCHAR NOT NULL,           -- JSON as written (secret references, never values)
    commit_sha  VARCHAR,
    applied_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, name)
);
CREATE TABLE runs (
    run_id       VARCHAR PRIMARY KEY,
    plan         VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL,          -- backtest | dryrun | scheduled | manual | replay
    tick_at      TIMESTAMPTZ,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    status       VARCHAR NOT NULL,          -- RUNNING | FINISHED | FAILED
    error        VARCHAR,
    commit_sha   VARCHAR,
    plan_digest  VARCHAR,
    data_digest  VARCHAR,
    start_date   DATE,
    end_date     DATE,
    stats        VARCHAR                    -- JSON
);
CREATE TABLE equity (
    run_id  VARCHAR NOT NULL,
    date    DATE NOT NULL,
    equity  DOUBLE NOT NULL,
    cash    DOUBLE NOT NULL,
    positions VARCHAR,                      -- JSON {ticker: size}
    PRIMARY KEY (run_id, date)
);
CREATE TABLE backtest_trades (
    run_id      VARCHAR NOT NULL,
    seq         INTEGER NOT NULL,
    ticker      VARCHAR NOT NULL,
    size        DOUBLE NOT NULL,
    entry_date  DATE,
    exit_date   DATE,
    entry_price DOUBLE,
    exit_price  DOUBLE,
    pnl         DOUBLE,
    return_pct  DOUBLE,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE backtest_fills (
    run_id     VARCHAR NOT NULL,
    seq        INTEGER NOT NULL,
    date       DATE NOT NULL,
    ticker     VARCHAR NOT NULL,
    size       DOUBLE NOT NULL,
    price      DOUBLE NOT NULL,
    commission DOUBLE NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE prices (
    source     VARCHAR NOT NULL,
    ticker     VARCHAR NOT NULL,
    date       DATE NOT NULL,
    open       DOUBLE NOT NULL,
    high       DOUBLE NOT NULL,
    low        DOUBLE NOT NULL,
    close      DOUBLE NOT NULL,
    volume     DOUBLE NOT NULL,
    adjustment VARCHAR NOT NULL,            -- e.g. yahoo:split+dividend, eastmoney:forward, none
    partial    BOOLEAN NOT NULL DEFAULT false,
    fetched_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, ticker, date)
);
CREATE TABLE price_ranges (
    source     VARCHAR NOT NULL,
    ticker     VARCHAR NOT NULL,
    first_date DATE NOT NULL,               -- every session from first_date to last_date is in
    last_date  DATE NOT NULL,               -- prices and final; a partial bar lies after last_date
    adjustment VARCHAR NOT NULL,
    fetched_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, ticker)
);
CREATE TABLE price_history (
    plan    VARCHAR NOT NULL,
    ticker  VARCHAR NOT NULL,
    date    DATE NOT NULL,
    open    DOUBLE NOT NULL,
    high    DOUBLE NOT NULL,
    low     DOUBLE NOT NULL,
    close   DOUBLE NOT NULL,
    run_id  VARCHAR NOT NULL,
    PRIMARY KEY (plan, ticker, date)
);
CREATE TABLE ticks (
    plan         VARCHAR NOT NULL,
    scheduled_at TIMESTAMPTZ NOT NULL,
    status       VARCHAR NOT NULL,          -- STARTED | FINISHED | FAILED | SKIPPED
    run_id       VARCHAR,
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    error        VARCHAR,
    PRIMARY KEY (plan, scheduled_at)
);
CREATE TABLE orders (
    client_id       VARCHAR PRIMARY KEY,    -- deterministic: plan, trading day, tick, ticker, leg
    plan            VARCHAR NOT NULL,
    run_id          VARCHAR NOT NULL,
    trading_day     DATE NOT NULL,
    tick_at         TIMESTAMPTZ,
    ticker          VARCHAR NOT NULL,
    side            VARCHAR NOT NULL,       -- BUY | SELL
    quantity        DOUBLE NOT NULL,
    order_type      VARCHAR NOT NULL,       -- TOO | TOC | TRG
    broker          VARCHAR NOT NULL,
    status          VARCHAR NOT NULL,       -- PENDING_SUBMIT | HELD | SUBMITTED | FILLED | PARTIAL | CANCELLED | REJECTED | EXPIRED (| REHEARSAL, v2)
    broker_order_id VARCHAR,
    commit_sha      VARCHAR,
    plan_digest     VARCHAR,
    conid           BIGINT,                 -- IB contract id, when the plan pins or resolved it
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    note            VARCHAR
);
CREATE TABLE fills (
    fill_id     VARCHAR PRIMARY KEY,
    client_id   VARCHAR NOT NULL,
    quantity    DOUBLE NOT NULL,
    price       DOUBLE NOT NULL,
    commission  DOUBLE NOT NULL DEFAULT 0,
    filled_at   TIMESTAMPTZ NOT NULL,
    source      VARCHAR NOT NULL,           -- manual | broker | replay
    commit_sha  VARCHAR,
    plan_digest VARCHAR,
    recorded_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE notifications (
    id        BIGINT PRIMARY KEY,
    notifier  VARCHAR NOT NULL,
    event     VARCHAR NOT NULL,
    digest    VARCHAR NOT NULL,
    title     VARCHAR NOT NULL,
    sent_at   TIMESTAMPTZ NOT NULL,
    outcome   VARCHAR NOT NULL,             -- sent | failed | suppressed
    error     VARCHAR
);
CREATE TABLE plan_storage (
    plan       VARCHAR PRIMARY KEY,
    data       VARCHAR NOT NULL,            -- JSON: a strategy's `storage` dict between incremental runs
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE SEQUENCE reconciliation_ids START 1;
CREATE SEQUENCE notification_ids START 1;
"""

# Version 2: run notes: what a run decided not to do and why (kept orders, refused or clipped
# orders, a strict plan's simulated book against its fills, a rehearsal), shown by the report.
V2_RUN_NOTES = """
ALTER TABLE runs ADD COLUMN notes VARCHAR;
"""

# Version 3: how the price cache last checked each ticker's whole history.
V3_PRICE_CHECKS = """
CREATE TABLE price_checks (
    source      VARCHAR NOT NULL,
    ticker      VARCHAR NOT NULL,
    digest      VARCHAR,                    -- sha256 of a local source's file when last read whole
    verified_at TIMESTAMPTZ,                -- when the whole cached range was last fetched again
    PRIMARY KEY (source, ticker)
);
"""

# Version 4: the daemon's last sign of life: a pass that finds ticks missed since then knows the daemon was
# not running from this instant on (ticks and reconciliations cannot say it: an idle daemon
# writes neither).
V4_HEARTBEAT = """
CREATE TABLE daemon_heartbeat (
    id          INTEGER PRIMARY KEY,        -- always 1: only the latest pass is kept
    last_pass   TIMESTAMPTZ NOT NULL,       -- the pass's clock when it ended (simulated under --at)
    pid         INTEGER NOT NULL,           -- the daemon process that made it
    passes      BIGINT NOT NULL,            -- passes recorded so far (it moves while the daemon lives)
    recorded_at TIMESTAMPTZ NOT NULL        -- clock.now() when written
);
"""

# Version 5: what a run's strategy printed (first and last 64 KiB kept) and how much in all.
V5_RUN_OUTPUT = """
ALTER TABLE runs ADD COLUMN output VARCHAR;
ALTER TABLE runs ADD COLUMN output_bytes BIGINT;
"""

# Version 6: a run stores only the results that differ from the plan's previous run (strict mode
# replays the same past every tick, so rewriting it made each tick cost grow with the history).
# A run's full series is its own rows from the *_from bounds on, and before them its base run's.
# Runs without a row here (older files, or rows written by hand) own all their rows.
V6_RESULT_CHAINS = """
CREATE TABLE run_results (
    run_id        VARCHAR PRIMARY KEY,
    plan          VARCHAR NOT NULL,
    base_run      VARCHAR,                  -- rows before the bounds below come from this run (NULL: none)
    equity_from   DATE,                     -- own equity rows start at this date (NULL: all own)
    trades_from   INTEGER NOT NULL,         -- own backtest_trades rows start at this seq
    fills_from    INTEGER NOT NULL,         -- own backtest_fills rows start at this seq
    depth         INTEGER NOT NULL,         -- how many base runs are behind this one
    last_date     DATE,                     -- its last equity date: where the next run may continue
    trades_before INTEGER NOT NULL,         -- leading trades, and fills, dated before last_date
    fills_before  INTEGER NOT NULL,
    digest        VARCHAR NOT NULL          -- sha256 of those leading rows and the equity before last_date
);
CREATE TABLE result_heads (
    plan   VARCHAR PRIMARY KEY,
    run_id VARCHAR NOT NULL                 -- the plan's latest run with results
);
"""

# Version 9: suspend/resume, an operator's emergency override recorded here and never in git (like
# `flux suspend`). Append-only, so the audit of who stopped and restarted a plan is kept whole.
V7_PLAN_OVERRIDES = """
CREATE SEQUENCE plan_override_ids START 1;
CREATE TABLE plan_overrides (
    id        BIGINT PRIMARY KEY DEFAULT nextval('plan_override_ids'),
    plan      VARCHAR NOT NULL,
    action    VARCHAR NOT NULL,             -- suspend | resume | cleared (the file itself says disabled)
    acted_at  TIMESTAMPTZ NOT NULL,
    actor     VARCHAR NOT NULL,             -- who: user@host for the CLI, the commit for a clear at apply
    reason    VARCHAR                       -- why, as given
);
"""

# Version 8: the daemon's health: when the daemon process started and how often it passes at the
# latest, written at its start (before its first pass, so last_pass may now be NULL), so
# `minitrade status --check` can tell a lagging daemon from one that just started.
V8_DAEMON_HEALTH = """
ALTER TABLE daemon_heartbeat ADD COLUMN started_at TIMESTAMPTZ;   -- clock.now() when the daemon started
ALTER TABLE daemon_heartbeat ADD COLUMN poll_seconds DOUBLE;      -- its longest sleep between passes
ALTER TABLE daemon_heartbeat ALTER COLUMN last_pass DROP NOT NULL;
"""

# Version 9: what the Telegram bot was told and did (minitrade/telegram). Append-only, like the
# overrides: a person who acted from the phone, and every stranger who tried, stays on record.
V9_TELEGRAM_AUDIT = """
CREATE SEQUENCE telegram_audit_ids START 1;
CREATE TABLE telegram_audit (
    id        BIGINT PRIMARY KEY DEFAULT nextval('telegram_audit_ids'),
    acted_at  TIMESTAMPTZ NOT NULL,
    chat_id   BIGINT NOT NULL,
    user_name VARCHAR,                      -- the Telegram @username or first name, as sent
    command   VARCHAR NOT NULL,             -- status | fill | suspend | ... | (text) for a non-command
    args      VARCHAR,                      -- as typed, cut at 200 characters
    outcome   VARCHAR NOT NULL,             -- answered | asked | done | declined | failed | expired | refused
    detail    VARCHAR                       -- what was done, or why not
);
"""

# Version 10: parameter sweeps of `minitrade optimize`. Recorded only by the coordinating process
# (never by a worker), one row per trial keyed by its id, so a trial a lost Dask worker ran twice
# cannot be counted twice.
V10_OPTIMIZATIONS = """
CREATE TABLE optimizations (
    optimization_id VARCHAR PRIMARY KEY,
    plan            VARCHAR NOT NULL,
    commit_sha      VARCHAR,
    dirty           BOOLEAN NOT NULL DEFAULT false,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ,
    status          VARCHAR NOT NULL,       -- RUNNING | FINISHED | FAILED | INTERRUPTED
    method          VARCHAR NOT NULL,       -- grid | random
    metric          VARCHAR NOT NULL,       -- a statistic key of runner/stats.py, e.g. sharpe
    space           VARCHAR NOT NULL,       -- JSON: parameter -> the values tried
    constraints     VARCHAR NOT NULL,       -- JSON list of the constraint expressions
    walk_forward    VARCHAR,                -- e.g. 3y/1y; NULL for one sweep over the whole period
    period_start    DATE,
    period_end      DATE,
    executor        VARCHAR NOT NULL,       -- local | tcp://HOST:PORT
    best_params     VARCHAR                 -- JSON of the best trial's parameters (whole period)
);
CREATE TABLE optimization_trials (
    optimization_id VARCHAR NOT NULL,
    trial_id        VARCHAR NOT NULL,
    number          INTEGER NOT NULL,       -- order of the trial in its phase
    phase           VARCHAR NOT NULL,       -- sweep | baseline (the plan's own params) | train | test
    window_no       INTEGER,                -- walk-forward window, from 1; NULL otherwise
    window_start    DATE,
    window_end      DATE,
    params          VARCHAR NOT NULL,       -- JSON: the parameters of this trial (the varied ones)
    stats           VARCHAR,                -- JSON: every statistic of the backtest
    score           DOUBLE,                 -- the ranked metric's value
    error           VARCHAR,                -- why the trial failed (the strategy's file:line)
    seconds         DOUBLE,                 -- compute time on the worker
    worker          VARCHAR,                -- pid N (local) or dask tcp://... (the worker's address)
    recorded_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (optimization_id, trial_id)
);
"""

MIGRATIONS: list[tuple[int, str]] = [
    (1, V1),
    (2, V2_RUN_NOTES),
    (3, V3_PRICE_CHECKS),
    (4, V4_HEARTBEAT),
    (5, V5_RUN_OUTPUT),
    (6, V6_RESULT_CHAINS),
    (7, V7_PLAN_OVERRIDES),
    (8, V8_DAEMON_HEALTH),
    (9, V9_TELEGRAM_AUDIT),
    (10, V10_OPTIMIZATIONS),
]
