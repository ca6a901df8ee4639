/*
 * results.c - the SQLite results store of results.h: <dir>/results.db with the tables
 * `trials`, `evals` and `sharpness` (schema version 2), one transaction per event.
 *
 * Durability. The database runs in WAL mode. Every call that writes is one SQL statement in
 * autocommit mode, hence one transaction, committed before the call returns. Evals and the
 * start of a trial are committed with synchronous=NORMAL: the commit is in the WAL file when
 * the call returns, so it survives a kill -9 or a crash of the host (nothing the host does
 * after that can lose it), but not necessarily an OS crash or power loss, after which the
 * last commits before the last WAL sync may be missing (the database stays consistent). The
 * end of a trial is committed with synchronous=FULL, which fsyncs the WAL and with it every
 * earlier commit: a trial whose end was recorded keeps its outcome and all its evals through
 * an OS crash or power loss too. What only NORMAL may lose on an OS crash are evals of a
 * trial still running, which the crash kills and a resumed sweep runs again anyway. This
 * keeps an fsync (0.1 ms to several ms, more when the disk is busy) off every eval and pays
 * it once per trial. busy_timeout lets several processes share one database; a write waits
 * up to TP_RESULTS_BUSY_MS for the lock.
 *
 * Non-finite numbers. SQLite stores +-Inf as REAL but turns NaN into NULL. Every REAL column is
 * nullable, and NULL reads back as NaN, so a NaN written (a diverged loss, no best metric yet)
 * reads back as NaN. Columns of a trial that has not ended (time_to_target, ...) are NULL and
 * read back as NaN too.
 *
 * Integers. uint64 values (seed, steps, global_step) are stored in SQLite's signed 64-bit
 * INTEGER bit for bit: values >= 2^63 look negative to SQL but read back exactly here.
 *
 * Open refuses, without changing the file: a file that is not an SQLite database or fails
 * PRAGMA quick_check; a database of another application (PRAGMA application_id, or tables
 * without a trainperf schema version); a schema version (PRAGMA user_version) newer than this
 * build's.
 *
 * A store is used from one thread. Callbacks of the foreach functions may call any function
 * of the same store, including the foreach functions (a report walks each trial's evals).
 *
 * Not here: sweeps and studies (a later issue adds their tables with schema version 2), the
 * AlgoPerf CSV export and reports (they read through the foreach functions).
 */
#define _DEFAULT_SOURCE /* flock */

#include "core/results.h"
#include "core/error.h"
#include "core/fs.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <trainperf/trainperf.h>

#define TP_RESULTS_SCHEMA_VERSION 2
#define TP_RESULTS_APPLICATION_ID 0x54505246 /* "TPRF" */
#define TP_RESULTS_BUSY_MS        10000

static const char schema_sql[] =
    "CREATE TABLE trials (\n"
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n" /* ids are never reused: logs are named by them */
    "  created_at TEXT NOT NULL,\n"             /* ISO-8601 UTC: 2024-05-01T12:34:56.789Z */
    "  workload TEXT NOT NULL,\n"
    "  variant TEXT NOT NULL DEFAULT '',\n" /* '' for the base workload */
    "  optimizer TEXT NOT NULL,\n"
    "  schedule TEXT NOT NULL,\n"
    "  selection TEXT NOT NULL,\n"
    "  hparams TEXT NOT NULL DEFAULT '{}',\n" /* JSON object */
    "  seed INTEGER NOT NULL,\n"
    "  budget REAL,\n"
    "  clock TEXT NOT NULL,\n" /* 'wall' or 'cpu' */
    "  status TEXT NOT NULL CHECK (status IN "
    "('running', 'reached', 'budget', 'complete', 'failed')),\n"
    "  reason INTEGER NOT NULL DEFAULT 0,\n" /* TP_OK or a TP_E... code */
    "  message TEXT NOT NULL DEFAULT '',\n"
    "  steps INTEGER NOT NULL DEFAULT 0,\n"
    "  submission_time_wall REAL,\n"
    "  submission_time_cpu REAL,\n"
    "  time_to_target REAL,\n" /* Inf when never reached */
    "  best_validation_metric REAL,\n"
    "  metric TEXT NOT NULL,\n"
    "  maximize INTEGER NOT NULL,\n"
    "  validation_target REAL,\n"
    "  test_target REAL,\n"
    "  wall_time REAL,\n"
    "  ended_at TEXT,\n"                       /* NULL while running */
    "  submission TEXT NOT NULL DEFAULT '',\n" /* the sweep's submission name */
    "  ruleset TEXT NOT NULL DEFAULT '',\n"    /* '', 'external' or 'self' */
    "  study INTEGER NOT NULL DEFAULT 0,\n"
    "  trial_index INTEGER NOT NULL DEFAULT 0,\n"
    "  plan_key TEXT UNIQUE\n" /* a sweep's name for the planned trial; NULL for one-offs */
    ");\n"
    "CREATE TABLE evals (\n"
    "  trial_id INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,\n"
    "  eval_index INTEGER NOT NULL,\n"
    "  global_step INTEGER NOT NULL,\n"
    "  score REAL,\n"
    "  submission_time_wall REAL,\n"
    "  submission_time_cpu REAL,\n"
    "  total_duration REAL,\n"
    "  validation_metric REAL,\n"
    "  validation_loss REAL,\n"
    "  test_metric REAL,\n"
    "  test_loss REAL,\n"
    "  validation_reached INTEGER NOT NULL,\n"
    "  test_reached INTEGER NOT NULL,\n"
    "  PRIMARY KEY (trial_id, eval_index)\n"
    ") WITHOUT ROWID;\n";

/* Schema version 2 adds the sharpness diagnostics; a version-1 database gets the table on its
 * first open by this build (the migration runs under the write lock, once). */
static const char schema_v2_sql[] =
    "CREATE TABLE sharpness (\n"
    "  trial_id INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,\n"
    "  step INTEGER NOT NULL,\n"  /* steps taken when measured; 0 at initialization */
    "  loss REAL,\n"              /* full-batch loss over the fixed examples */
    "  sharpness REAL,\n"         /* top Hessian eigenvalue; NULL when not measured */
    "  precond_sharpness REAL,\n" /* of P^-1/2 H P^-1/2; NULL without a preconditioner */
    "  threshold REAL,\n"         /* the optimizer's stability threshold; NULL when unknown */
    "  threshold_kind INTEGER NOT NULL,\n" /* 0 none, 1 bounds sharpness, 2 preconditioned */
    "  lr REAL,\n"
    "  iters INTEGER NOT NULL,\n"
    "  grads INTEGER NOT NULL,\n"
    "  seconds REAL,\n"
    "  PRIMARY KEY (trial_id, step)\n"
    ") WITHOUT ROWID;\n";

static const char insert_trial_sql[] =
    "INSERT INTO trials (created_at, workload, variant, optimizer, schedule, selection, hparams, "
    "seed, budget, clock, status, metric, maximize, validation_target, test_target, "
    "submission, ruleset, study, trial_index, plan_key) "
    "VALUES (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
    "'running', ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";

static const char insert_eval_sql[] =
    "INSERT INTO evals (trial_id, eval_index, global_step, score, submission_time_wall, "
    "submission_time_cpu, total_duration, validation_metric, validation_loss, test_metric, "
    "test_loss, validation_reached, test_reached) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

static const char insert_sharpness_sql[] =
    "INSERT INTO sharpness (trial_id, step, loss, sharpness, precond_sharpness, threshold, "
    "threshold_kind, lr, iters, grads, seconds) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

static const char select_sharpness_sql[] =
    "SELECT step, loss, sharpness, precond_sharpness, threshold, threshold_kind, lr, iters, "
    "grads, seconds FROM sharpness WHERE trial_id = ?1 ORDER BY step";

static const char end_trial_sql[] =
    "UPDATE trials SET status = ?2, reason = ?3, message = ?4, steps = ?5, "
    "submission_time_wall = ?6, submission_time_cpu = ?7, time_to_target = ?8, "
    "best_validation_metric = ?9, wall_time = ?10, "
    "ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1";

/* select_trials_sql alone walks all trials; with where_id_sql, one. */
static const char select_trials_sql[] =
    "SELECT id, workload, variant, optimizer, schedule, selection, hparams, seed, budget, "
    "metric, maximize, validation_target, status, reason, message, steps, "
    "submission_time_wall, submission_time_cpu, time_to_target, best_validation_metric, "
    "wall_time, (SELECT count(*) FROM evals e WHERE e.trial_id = t.id), "
    "submission, ruleset, study, trial_index, plan_key, clock, test_target "
    "FROM trials t ";
static const char where_id_sql[] = "WHERE id = ?1";

static const char select_evals_sql[] =
    "SELECT eval_index, global_step, score, submission_time_wall, submission_time_cpu, "
    "total_duration, validation_metric, validation_loss, test_metric, test_loss, "
    "validation_reached, test_reached FROM evals WHERE trial_id = ?1 ORDER BY eval_index";

struct tp_results {
    sqlite3 *db;
    char *path; /* <dir>/results.db */
    /* Kept for the writes of a trial; the foreach queries are prepared per call so that
     * their callbacks may call back into the store. */
    sqlite3_stmt *insert_trial;
    sqlite3_stmt *insert_eval;
    sqlite3_stmt *insert_sharpness;
    sqlite3_stmt *end_trial;
    sqlite3_stmt *trial_exists;
};

/* ---------------------------------------------------------------------------------------- */
/* Helpers */

/* The TP_E... code for an SQLite result code. */
static int tp_code(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return TP_ENOMEM;
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
        return TP_EIO;
    default:
        return TP_EDB;
    }
}

/* "<path>: <what>: <SQLite's message>[; hint]". Returns the TP_E... code for rc. */
static int db_fail(const tp_results *r, int rc, char *err, size_t errlen, const char *fmt, ...)
    TP_PRINTF(5, 6);

static int db_fail(const tp_results *r, int rc, char *err, size_t errlen, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const char *msg = r->db != NULL ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc);
    const char *hint = "";
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        hint = "; another process held the database locked for too long";
        break;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        hint = "; the file is not a trainperf results database or is damaged: move it aside "
               "and rerun";
        break;
    case SQLITE_FULL:
        hint = "; the disk is full";
        break;
    default:
        break;
    }
    tp__errf(err, errlen, "%s: %s: %s%s", r->path, what, msg, hint);
    return tp_code(rc);
}

/* Run statements that return no rows we need. */
static int exec(tp_results *r, const char *sql, char *err, size_t errlen, const char *what)
{
    int rc = sqlite3_exec(r->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return db_fail(r, rc, err, errlen, "%s", what);
    return TP_OK;
}

/* What the file says it is, read in one statement so that all three come from one snapshot
 * (another process may be creating the schema meanwhile). The first read of the file: a file
 * that is not a database fails here. */
static int read_header(tp_results *r, int64_t *app_id, int64_t *version, int64_t *tables, char *err,
                       size_t errlen)
{
    static const char sql[] = "SELECT (SELECT application_id FROM pragma_application_id), "
                              "(SELECT user_version FROM pragma_user_version), "
                              "(SELECT count(*) FROM sqlite_schema)";
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        *app_id = sqlite3_column_int64(st, 0);
        *version = sqlite3_column_int64(st, 1);
        *tables = sqlite3_column_int64(st, 2);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return db_fail(r, rc, err, errlen, "cannot open the results database");
    return TP_OK;
}

/* Refuse what this build cannot or must not use. */
static int check_header(tp_results *r, int64_t app_id, int64_t version, int64_t tables, char *err,
                        size_t errlen)
{
    if (app_id != 0 && app_id != TP_RESULTS_APPLICATION_ID) {
        tp__errf(err, errlen,
                 "%s: not a trainperf results database (application_id 0x%llx); choose another "
                 "results directory",
                 r->path, (unsigned long long)app_id);
        return TP_EDB;
    }
    if (version > TP_RESULTS_SCHEMA_VERSION) {
        tp__errf(err, errlen,
                 "%s: schema version %lld is newer than this trainperf supports (%d); use the "
                 "trainperf that wrote it, or another results directory",
                 r->path, (long long)version, TP_RESULTS_SCHEMA_VERSION);
        return TP_EDB;
    }
    if (version == 0 && tables > 0) {
        tp__errf(err, errlen,
                 "%s: an SQLite database without a trainperf schema version (PRAGMA "
                 "user_version is 0 but it has tables); choose another results directory",
                 r->path);
        return TP_EDB;
    }
    return TP_OK;
}

static int pragma_text(tp_results *r, const char *sql, char *out, size_t outlen, char *err,
                       size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        snprintf(out, outlen, "%s", t != NULL ? t : "");
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK) {
        int code = db_fail(r, rc, err, errlen, "cannot open the results database");
        sqlite3_finalize(st);
        return code;
    }
    sqlite3_finalize(st);
    return TP_OK;
}

/* mkdir -p, then make sure it is a directory. */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
    int rc = tp__fs_mkdir_p(dir, err, errlen);
    if (rc != TP_OK)
        return rc;
    struct stat st;
    if (stat(dir, &st) != 0) {
        tp__errf(err, errlen, "cannot use results directory %s: %s", dir, strerror(errno));
        return TP_EIO;
    }
    if (!S_ISDIR(st.st_mode)) {
        tp__errf(err, errlen, "cannot use results directory %s: not a directory", dir);
        return TP_EIO;
    }
    return TP_OK;
}

static double col_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    return t != NULL ? t : "";
}

static const char *const status_names[] = {"running", "reached", "budget", "complete", "failed"};

const char *tp_trial_status_name(tp_trial_status s)
{
    if ((unsigned)s < sizeof status_names / sizeof status_names[0])
        return status_names[s];
    return "unknown";
}

static int status_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof status_names / sizeof status_names[0]); i++)
        if (strcmp(status_names[i], name) == 0)
            return i;
    return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Open and close */

/* Read-only checks, then WAL, then the schema. Nothing is written to a file refused here. */
static int open_db(tp_results *r, char *err, size_t errlen)
{
    int64_t app_id = 0, version = 0, tables = 0;
    char text[160];
    int rc;

    rc = sqlite3_open_v2(r->path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK)
        return db_fail(r, rc, err, errlen, "cannot open the results database");
    sqlite3_extended_result_codes(r->db, 1);
    sqlite3_busy_timeout(r->db, TP_RESULTS_BUSY_MS);

    if ((rc = read_header(r, &app_id, &version, &tables, err, errlen)) != TP_OK ||
        (rc = check_header(r, app_id, version, tables, err, errlen)) != TP_OK)
        return rc;

    if ((rc = pragma_text(r, "PRAGMA quick_check", text, sizeof text, err, errlen)) != TP_OK)
        return rc;
    if (strcmp(text, "ok") != 0) {
        /* SQLite's report is several lines; keep the message on one. */
        for (char *p = text; *p; p++)
            if (*p == '\n')
                *p = ' ';
        tp__errf(err, errlen,
                 "%s: integrity check failed: %s; the database is damaged: move it aside (or "
                 "try `sqlite3 %s .recover`) and rerun",
                 r->path, text, r->path);
        return TP_EDB;
    }

    if ((rc = pragma_text(r, "PRAGMA journal_mode=WAL", text, sizeof text, err, errlen)) != TP_OK)
        return rc;
    if (strcmp(text, "wal") != 0) {
        tp__errf(err, errlen,
                 "%s: cannot switch to WAL mode (journal mode is \"%s\"); put the results "
                 "directory on a local file system",
                 r->path, text);
        return TP_EDB;
    }
    if ((rc = exec(r, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON", err, errlen,
                   "cannot set up the results database")) != TP_OK)
        return rc;

    if (version == TP_RESULTS_SCHEMA_VERSION)
        return TP_OK;

    /* A new database, or an older schema to bring up to date. Another process may be doing
     * the same at the same time: take the write lock, then look again. */
    if ((rc = exec(r, "BEGIN IMMEDIATE", err, errlen, "cannot create the schema")) != TP_OK)
        return rc;
    if ((rc = read_header(r, &app_id, &version, &tables, err, errlen)) != TP_OK ||
        (rc = check_header(r, app_id, version, tables, err, errlen)) != TP_OK)
        goto rollback;
    if (version == 0) {
        char sql[sizeof schema_sql + 128];
        snprintf(sql, sizeof sql, "%sPRAGMA application_id=%d;", schema_sql,
                 TP_RESULTS_APPLICATION_ID);
        if ((rc = exec(r, sql, err, errlen, "cannot create the schema")) != TP_OK)
            goto rollback;
    }
    if (version < 2 && (rc = exec(r, schema_v2_sql, err, errlen,
                                  "cannot add the sharpness table (schema version 2)")) != TP_OK)
        goto rollback;
    if (version < TP_RESULTS_SCHEMA_VERSION) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d;", TP_RESULTS_SCHEMA_VERSION);
        if ((rc = exec(r, sql, err, errlen, "cannot set the schema version")) != TP_OK)
            goto rollback;
    }
    if ((rc = exec(r, "COMMIT", err, errlen, "cannot create the schema")) != TP_OK)
        goto rollback;
    return TP_OK;

rollback:
    sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int prepare(tp_results *r, const char *sql, sqlite3_stmt **st, char *err, size_t errlen)
{
    int rc = sqlite3_prepare_v3(r->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc != SQLITE_OK)
        return db_fail(r, rc, err, errlen, "cannot prepare a statement");
    return TP_OK;
}

int tp_results_open(const char *dir, tp_results **out, char *err, size_t errlen)
{
    tp_results *r = NULL;
    int lock = -1, rc;

    *out = NULL;
    if ((rc = make_dirs(dir, err, errlen)) != TP_OK)
        return rc;
    r = calloc(1, sizeof *r);
    size_t n = strlen(dir) + sizeof "/results.db";
    if (r == NULL || (r->path = malloc(n)) == NULL) {
        tp__errf(err, errlen, "%s: out of memory opening the results database", dir);
        rc = TP_ENOMEM;
        goto error;
    }
    snprintf(r->path, n, "%s/results.db", dir);

    /* Opening may create the database and switch it to WAL, which SQLite does not let two
     * connections do at once (one gets SQLITE_BUSY or an I/O error without waiting). Opens of
     * one directory by trainperf processes take turns on a lock of the directory; where the
     * file system has no flock, they go ahead without it. */
    lock = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock >= 0)
        while (flock(lock, LOCK_EX) != 0 && errno == EINTR)
            ;

    if ((rc = open_db(r, err, errlen)) != TP_OK)
        goto error;
    if ((rc = prepare(r, insert_trial_sql, &r->insert_trial, err, errlen)) != TP_OK ||
        (rc = prepare(r, insert_eval_sql, &r->insert_eval, err, errlen)) != TP_OK ||
        (rc = prepare(r, insert_sharpness_sql, &r->insert_sharpness, err, errlen)) != TP_OK ||
        (rc = prepare(r, end_trial_sql, &r->end_trial, err, errlen)) != TP_OK ||
        (rc = prepare(r, "SELECT 1 FROM trials WHERE id = ?1", &r->trial_exists, err, errlen)) !=
            TP_OK)
        goto error;

    if (lock >= 0)
        close(lock);
    *out = r;
    return TP_OK;

error:
    if (lock >= 0)
        close(lock);
    tp_results_close(r);
    return rc;
}

void tp_results_close(tp_results *r)
{
    if (r == NULL)
        return;
    sqlite3_finalize(r->insert_trial);
    sqlite3_finalize(r->insert_eval);
    sqlite3_finalize(r->insert_sharpness);
    sqlite3_finalize(r->end_trial);
    sqlite3_finalize(r->trial_exists);
    /* The last connection to close checkpoints the WAL into the database and removes it. */
    sqlite3_close(r->db);
    free(r->path);
    free(r);
}

const char *tp_results_path(const tp_results *r)
{
    return r->path;
}

/* ---------------------------------------------------------------------------------------- */
/* Writing */

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return sqlite3_bind_text(st, i, s != NULL ? s : "", -1, SQLITE_STATIC);
}

/* Step a write statement once; leaves it reset with its bindings cleared. */
static int step_write(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int tp_results_begin_trial(tp_results *r, const tp_trial_meta *meta, int64_t *trial_id, char *err,
                           size_t errlen)
{
    assert(r != NULL && meta != NULL && trial_id != NULL);
    sqlite3_stmt *st = r->insert_trial;
    *trial_id = 0;
    if (meta->workload == NULL || meta->workload[0] == '\0') {
        tp__errf(err, errlen, "%s: cannot record a trial without a workload name", r->path);
        return TP_EINVAL;
    }
    bind_text(st, 1, meta->workload);
    bind_text(st, 2, meta->variant);
    bind_text(st, 3, meta->optimizer);
    bind_text(st, 4, meta->schedule);
    bind_text(st, 5, meta->selection);
    bind_text(st, 6, meta->hparams_json != NULL ? meta->hparams_json : "{}");
    sqlite3_bind_int64(st, 7, (sqlite3_int64)meta->seed);
    sqlite3_bind_double(st, 8, meta->budget);
    bind_text(st, 9, meta->clock);
    bind_text(st, 10, meta->metric);
    sqlite3_bind_int(st, 11, meta->maximize ? 1 : 0);
    sqlite3_bind_double(st, 12, meta->validation_target);
    sqlite3_bind_double(st, 13, meta->test_target);
    bind_text(st, 14, meta->submission && *meta->submission ? meta->submission : meta->optimizer);
    bind_text(st, 15, meta->ruleset);
    sqlite3_bind_int(st, 16, meta->study);
    sqlite3_bind_int(st, 17, meta->trial_index);
    if (meta->plan_key && *meta->plan_key)
        bind_text(st, 18, meta->plan_key);
    else
        sqlite3_bind_null(st, 18);
    int rc = step_write(st);
    if (rc != SQLITE_OK)
        return db_fail(r, rc, err, errlen, "cannot record a new trial of %s", meta->workload);
    *trial_id = sqlite3_last_insert_rowid(r->db);
    return TP_OK;
}

int tp_results_add_eval(tp_results *r, int64_t trial_id, const tp_eval_row *e, char *err,
                        size_t errlen)
{
    assert(r != NULL && e != NULL);
    sqlite3_stmt *st = r->insert_eval;
    sqlite3_bind_int64(st, 1, trial_id);
    sqlite3_bind_int64(st, 2, e->eval_index);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)e->global_step);
    sqlite3_bind_double(st, 4, e->score);
    sqlite3_bind_double(st, 5, e->submission_time_wall);
    sqlite3_bind_double(st, 6, e->submission_time_cpu);
    sqlite3_bind_double(st, 7, e->total_duration);
    sqlite3_bind_double(st, 8, e->validation_metric);
    sqlite3_bind_double(st, 9, e->validation_loss);
    sqlite3_bind_double(st, 10, e->test_metric);
    sqlite3_bind_double(st, 11, e->test_loss);
    sqlite3_bind_int(st, 12, e->validation_reached ? 1 : 0);
    sqlite3_bind_int(st, 13, e->test_reached ? 1 : 0);
    int rc = step_write(st);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
        tp__errf(err, errlen, "%s: cannot record eval %u: no trial %lld", r->path, e->eval_index,
                 (long long)trial_id);
        return TP_ENOENT;
    }
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        tp__errf(err, errlen, "%s: cannot record eval %u of trial %lld: it is already recorded",
                 r->path, e->eval_index, (long long)trial_id);
        return TP_EINVAL;
    }
    if (rc != SQLITE_OK)
        return db_fail(r, rc, err, errlen, "cannot record eval %u of trial %lld", e->eval_index,
                       (long long)trial_id);
    return TP_OK;
}

/* NaN is stored as NULL (SQLite's own conversion), read back as NaN by col_real. */
int tp_results_add_sharpness(tp_results *r, int64_t trial_id, const tp_sharpness_row *m, char *err,
                             size_t errlen)
{
    assert(r != NULL && m != NULL);
    sqlite3_stmt *st = r->insert_sharpness;
    sqlite3_bind_int64(st, 1, trial_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)m->step);
    sqlite3_bind_double(st, 3, m->loss);
    sqlite3_bind_double(st, 4, m->sharpness);
    sqlite3_bind_double(st, 5, m->precond_sharpness);
    sqlite3_bind_double(st, 6, m->threshold);
    sqlite3_bind_int(st, 7, m->threshold_kind);
    sqlite3_bind_double(st, 8, m->lr);
    sqlite3_bind_int64(st, 9, m->iters);
    sqlite3_bind_int64(st, 10, (sqlite3_int64)m->grads);
    sqlite3_bind_double(st, 11, m->seconds);
    int rc = step_write(st);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
        tp__errf(err, errlen, "%s: cannot record a sharpness measurement: no trial %lld", r->path,
                 (long long)trial_id);
        return TP_ENOENT;
    }
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        tp__errf(err, errlen, "%s: the sharpness at step %llu of trial %lld is already recorded",
                 r->path, (unsigned long long)m->step, (long long)trial_id);
        return TP_EINVAL;
    }
    if (rc != SQLITE_OK)
        return db_fail(r, rc, err, errlen, "cannot record the sharpness of trial %lld",
                       (long long)trial_id);
    return TP_OK;
}

int tp_results_end_trial(tp_results *r, int64_t trial_id, const tp_trial_end *end, char *err,
                         size_t errlen)
{
    assert(r != NULL && end != NULL);
    if (end->status == TP_TRIAL_RUNNING || (unsigned)end->status > TP_TRIAL_FAILED) {
        tp__errf(err, errlen,
                 "%s: cannot end trial %lld with status %d; expected reached, "
                 "budget, complete or failed",
                 r->path, (long long)trial_id, (int)end->status);
        return TP_EINVAL;
    }
    sqlite3_stmt *st = r->end_trial;
    sqlite3_bind_int64(st, 1, trial_id);
    bind_text(st, 2, tp_trial_status_name(end->status));
    sqlite3_bind_int(st, 3, end->reason);
    bind_text(st, 4, end->message);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)end->steps);
    sqlite3_bind_double(st, 6, end->submission_time_wall);
    sqlite3_bind_double(st, 7, end->submission_time_cpu);
    sqlite3_bind_double(st, 8, end->time_to_target);
    sqlite3_bind_double(st, 9, end->best_validation_metric);
    sqlite3_bind_double(st, 10, end->wall_time);
    /* The one commit of a trial that is synced to disk (see the top of the file). */
    int rc = sqlite3_exec(r->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = step_write(st);
    else
        sqlite3_clear_bindings(st);
    int code = TP_OK;
    if (rc != SQLITE_OK)
        code =
            db_fail(r, rc, err, errlen, "cannot record the end of trial %lld", (long long)trial_id);
    sqlite3_exec(r->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    if (code != TP_OK)
        return code;
    if (sqlite3_changes(r->db) == 0) {
        tp__errf(err, errlen, "%s: cannot record the end of trial %lld: no such trial", r->path,
                 (long long)trial_id);
        return TP_ENOENT;
    }
    return TP_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Planned trials (sweeps) */

int tp_results_find_planned(tp_results *r, const char *plan_key, int64_t *id,
                            tp_trial_status *status, char *err, size_t errlen)
{
    assert(r != NULL && plan_key != NULL && id != NULL && status != NULL);
    *id = 0;
    *status = TP_TRIAL_RUNNING;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(r->db, "SELECT id, status FROM trials WHERE plan_key = ?1", -1, &st,
                                NULL);
    if (rc != SQLITE_OK)
        return db_fail(r, rc, err, errlen, "cannot look up planned trial %s", plan_key);
    sqlite3_bind_text(st, 1, plan_key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int out = TP_OK;
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        int s = status_parse(col_text(st, 1));
        if (s < 0) {
            tp__errf(err, errlen, "%s: trial %lld has an unknown status \"%s\"", r->path,
                     (long long)*id, col_text(st, 1));
            out = TP_EDB;
        } else {
            *status = (tp_trial_status)s;
        }
    } else if (rc != SQLITE_DONE) {
        out = db_fail(r, rc, err, errlen, "cannot look up planned trial %s", plan_key);
    }
    sqlite3_finalize(st);
    return out;
}

int tp_results_delete_trial(tp_results *r, int64_t id, char *err, size_t errlen)
{
    assert(r != NULL);
    /* The trial and its evals go in one transaction (ON DELETE CASCADE). */
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(r->db, "DELETE FROM trials WHERE id = ?1", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        rc = sqlite3_step(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return db_fail(r, rc, err, errlen, "cannot delete trial %lld", (long long)id);
    return TP_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Reading */

static int trial_exists(tp_results *r, int64_t id, int *exists, char *err, size_t errlen)
{
    sqlite3_stmt *st = r->trial_exists;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_fail(r, rc, err, errlen, "cannot read trial %lld", (long long)id);
    *exists = rc == SQLITE_ROW;
    return TP_OK;
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Read the current row of select_trials_sql; TP_EDB on a status this build does not know. */
static int read_trial(tp_results *r, sqlite3_stmt *st, tp_trial_summary *t, char *err,
                      size_t errlen)
{
    memset(t, 0, sizeof *t);
    t->id = sqlite3_column_int64(st, 0);
    t->workload = col_text(st, 1);
    t->variant = col_text(st, 2);
    t->optimizer = col_text(st, 3);
    t->schedule = col_text(st, 4);
    t->selection = col_text(st, 5);
    t->hparams_json = col_text(st, 6);
    t->seed = (uint64_t)sqlite3_column_int64(st, 7);
    t->budget = col_real(st, 8);
    t->metric = col_text(st, 9);
    t->maximize = sqlite3_column_int(st, 10);
    t->validation_target = col_real(st, 11);
    int status = status_parse(col_text(st, 12));
    if (status < 0) {
        tp__errf(err, errlen, "%s: trial %lld has an unknown status \"%s\"", r->path,
                 (long long)t->id, col_text(st, 12));
        return TP_EDB;
    }
    t->status = (tp_trial_status)status;
    t->reason = sqlite3_column_int(st, 13);
    t->message = col_text(st, 14);
    t->steps = (uint64_t)sqlite3_column_int64(st, 15);
    t->submission_time_wall = col_real(st, 16);
    t->submission_time_cpu = col_real(st, 17);
    t->time_to_target = col_real(st, 18);
    t->best_validation_metric = col_real(st, 19);
    t->wall_time = col_real(st, 20);
    t->num_evals = (uint32_t)sqlite3_column_int64(st, 21);
    t->submission = col_text(st, 22);
    t->ruleset = col_text(st, 23);
    t->study = sqlite3_column_int(st, 24);
    t->trial_index = sqlite3_column_int(st, 25);
    t->plan_key = col_text(st, 26);
    t->clock = col_text(st, 27);
    t->test_target = col_real(st, 28);
    return TP_OK;
}

int tp_results_foreach_trial(tp_results *r, const int64_t *ids, size_t n,
                             int (*fn)(const tp_trial_summary *t, void *ud), void *ud, char *err,
                             size_t errlen)
{
    assert(r != NULL && fn != NULL);
    sqlite3_stmt *st = NULL;
    int64_t *sorted = NULL;
    size_t count = 1; /* one query over all trials, or one per id */
    int rc = TP_OK;

    if (ids != NULL) {
        if (n == 0)
            return TP_OK;
        sorted = malloc(n * sizeof *sorted);
        if (sorted == NULL) {
            tp__errf(err, errlen, "%s: out of memory reading trials", r->path);
            return TP_ENOMEM;
        }
        memcpy(sorted, ids, n * sizeof *sorted);
        qsort(sorted, n, sizeof *sorted, cmp_id);
        count = 0;
        for (size_t i = 0; i < n; i++)
            if (i == 0 || sorted[i] != sorted[i - 1])
                sorted[count++] = sorted[i];
        /* Every id must exist before fn sees the first trial. */
        for (size_t i = 0; i < count; i++) {
            int exists = 0;
            if ((rc = trial_exists(r, sorted[i], &exists, err, errlen)) != TP_OK)
                goto error;
            if (!exists) {
                tp__errf(err, errlen, "%s: no trial %lld", r->path, (long long)sorted[i]);
                rc = TP_ENOENT;
                goto error;
            }
        }
    }

    char sql[sizeof select_trials_sql + sizeof where_id_sql + 16];
    snprintf(sql, sizeof sql, "%s%s", select_trials_sql,
             sorted != NULL ? where_id_sql : "ORDER BY id");
    int sr = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
    if (sr != SQLITE_OK) {
        rc = db_fail(r, sr, err, errlen, "cannot read trials");
        goto error;
    }
    for (size_t i = 0; i < count; i++) {
        sqlite3_reset(st);
        if (sorted != NULL)
            sqlite3_bind_int64(st, 1, sorted[i]);
        while ((sr = sqlite3_step(st)) == SQLITE_ROW) {
            tp_trial_summary t;
            if ((rc = read_trial(r, st, &t, err, errlen)) != TP_OK)
                goto error;
            if ((rc = fn(&t, ud)) != 0)
                goto error; /* fn's value, not an error of ours */
        }
        if (sr != SQLITE_DONE) {
            rc = db_fail(r, sr, err, errlen, "cannot read trials");
            goto error;
        }
    }

error:
    sqlite3_finalize(st);
    free(sorted);
    return rc;
}

/* A per-trial query (sql with ?1 = trial id) prepared into *st, after checking the trial
 * exists: TP_ENOENT naming it when it does not. */
static int trial_query(tp_results *r, int64_t trial_id, const char *sql, const char *what,
                       sqlite3_stmt **st, char *err, size_t errlen)
{
    int exists = 0, rc;
    if ((rc = trial_exists(r, trial_id, &exists, err, errlen)) != TP_OK)
        return rc;
    if (!exists) {
        tp__errf(err, errlen, "%s: no trial %lld", r->path, (long long)trial_id);
        return TP_ENOENT;
    }
    int sr = sqlite3_prepare_v2(r->db, sql, -1, st, NULL);
    if (sr != SQLITE_OK) {
        sqlite3_finalize(*st);
        *st = NULL;
        return db_fail(r, sr, err, errlen, "cannot read the %s of trial %lld", what,
                       (long long)trial_id);
    }
    sqlite3_bind_int64(*st, 1, trial_id);
    return TP_OK;
}

int tp_results_foreach_eval(tp_results *r, int64_t trial_id,
                            int (*fn)(const tp_eval_row *e, void *ud), void *ud, char *err,
                            size_t errlen)
{
    assert(r != NULL && fn != NULL);
    sqlite3_stmt *st = NULL;
    int sr, rc = trial_query(r, trial_id, select_evals_sql, "evals", &st, err, errlen);
    if (rc != TP_OK)
        return rc;
    while ((sr = sqlite3_step(st)) == SQLITE_ROW) {
        tp_eval_row e;
        e.eval_index = (uint32_t)sqlite3_column_int64(st, 0);
        e.global_step = (uint64_t)sqlite3_column_int64(st, 1);
        e.score = col_real(st, 2);
        e.submission_time_wall = col_real(st, 3);
        e.submission_time_cpu = col_real(st, 4);
        e.total_duration = col_real(st, 5);
        e.validation_metric = col_real(st, 6);
        e.validation_loss = col_real(st, 7);
        e.test_metric = col_real(st, 8);
        e.test_loss = col_real(st, 9);
        e.validation_reached = sqlite3_column_int(st, 10);
        e.test_reached = sqlite3_column_int(st, 11);
        if ((rc = fn(&e, ud)) != 0)
            goto error;
    }
    if (sr != SQLITE_DONE)
        rc =
            db_fail(r, sr, err, errlen, "cannot read the evals of trial %lld", (long long)trial_id);

error:
    sqlite3_finalize(st);
    return rc;
}

int tp_results_foreach_sharpness(tp_results *r, int64_t trial_id,
                                 int (*fn)(const tp_sharpness_row *m, void *ud), void *ud,
                                 char *err, size_t errlen)
{
    assert(r != NULL && fn != NULL);
    sqlite3_stmt *st = NULL;
    int sr, rc = trial_query(r, trial_id, select_sharpness_sql, "sharpness", &st, err, errlen);
    if (rc != TP_OK)
        return rc;
    while ((sr = sqlite3_step(st)) == SQLITE_ROW) {
        tp_sharpness_row m = {
            .step = (uint64_t)sqlite3_column_int64(st, 0),
            .loss = col_real(st, 1),
            .sharpness = col_real(st, 2),
            .precond_sharpness = col_real(st, 3),
            .threshold = col_real(st, 4),
            .threshold_kind = sqlite3_column_int(st, 5),
            .lr = col_real(st, 6),
            .iters = (uint32_t)sqlite3_column_int64(st, 7),
            .grads = (uint64_t)sqlite3_column_int64(st, 8),
            .seconds = col_real(st, 9),
        };
        if ((rc = fn(&m, ud)) != 0)
            break;
    }
    if (rc == 0 && sr != SQLITE_DONE)
        rc = db_fail(r, sr, err, errlen, "cannot read the sharpness of trial %lld",
                     (long long)trial_id);
    sqlite3_finalize(st);
    return rc;
}
