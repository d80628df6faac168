"""The catalog's schema, as numbered forward migrations.

Each migration runs once, in its own transaction, and is recorded in
`schema_migrations`. Never edit a migration that has shipped: add a new one, so
that catalogs written by older versions stay readable.

JSON documents are stored as VARCHAR holding JSON text; timestamps are UTC.
"""

from __future__ import annotations

from typing import NamedTuple


class Migration(NamedTuple):
    number: int
    name: str
    sql: str


MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "initial schema",
        """
        CREATE SEQUENCE batch_id_seq START 1;
        CREATE TABLE batches (
            batch_id      BIGINT PRIMARY KEY DEFAULT nextval('batch_id_seq'),
            kind          VARCHAR NOT NULL,        -- data | labels
            source_path   VARCHAR NOT NULL,
            source_name   VARCHAR NOT NULL,
            content_hash  VARCHAR NOT NULL,        -- sha256 of the source file's bytes
            size_bytes    BIGINT NOT NULL,
            format        VARCHAR,                 -- csv | csv.gz | parquet
            status        VARCHAR NOT NULL,        -- accepted | warned | quarantined | duplicate
            duplicate_of  BIGINT,
            row_count     BIGINT,
            schema_json   VARCHAR,                 -- [{"name", "type"}]
            labelled      BOOLEAN,
            snapshot_hash VARCHAR,                 -- object store: Parquet snapshot
            quarantine_path VARCHAR,
            ingested_at   TIMESTAMP NOT NULL,
            UNIQUE (source_path, content_hash)
        );
        CREATE INDEX batches_hash ON batches (content_hash);

        CREATE TABLE validation_issues (
            batch_id    BIGINT NOT NULL,
            severity    VARCHAR NOT NULL,          -- error (quarantined) | warning
            column_name VARCHAR,
            code        VARCHAR NOT NULL,
            message     VARCHAR NOT NULL
        );

        CREATE SEQUENCE stage_run_id_seq START 1;
        CREATE TABLE stage_runs (
            run_id      BIGINT PRIMARY KEY DEFAULT nextval('stage_run_id_seq'),
            stage       VARCHAR NOT NULL,          -- ingest | validate | prepare | train | ...
            status      VARCHAR NOT NULL,          -- running | succeeded | failed | interrupted
            inputs_json VARCHAR,
            outputs_json VARCHAR,
            started_at  TIMESTAMP NOT NULL,
            ended_at    TIMESTAMP,
            error       VARCHAR,
            pid         INTEGER
        );

        CREATE SEQUENCE dataset_id_seq START 1;
        CREATE TABLE datasets (
            dataset_id     BIGINT PRIMARY KEY DEFAULT nextval('dataset_id_seq'),
            dataset_hash   VARCHAR NOT NULL UNIQUE, -- over snapshots, columns and split
            batch_ids_json VARCHAR NOT NULL,
            snapshot_hashes_json VARCHAR NOT NULL,
            split_json     VARCHAR NOT NULL,
            row_count      BIGINT NOT NULL,
            train_rows     BIGINT NOT NULL,
            holdout_rows   BIGINT NOT NULL,
            created_at     TIMESTAMP NOT NULL
        );

        CREATE TABLE feature_definitions (
            feature_hash VARCHAR PRIMARY KEY,
            spec_json    VARCHAR NOT NULL,
            created_at   TIMESTAMP NOT NULL
        );

        CREATE SEQUENCE training_run_id_seq START 1;
        CREATE TABLE training_runs (
            training_run_id BIGINT PRIMARY KEY DEFAULT nextval('training_run_id_seq'),
            stage_run_id    BIGINT,
            dataset_id      BIGINT NOT NULL,
            feature_hash    VARCHAR NOT NULL,
            candidate       VARCHAR NOT NULL,
            kind            VARCHAR NOT NULL,
            params_json     VARCHAR NOT NULL,
            seed            BIGINT NOT NULL,
            device          VARCHAR NOT NULL,
            status          VARCHAR NOT NULL,      -- succeeded | failed
            error           VARCHAR,
            started_at      TIMESTAMP NOT NULL,
            ended_at        TIMESTAMP,
            duration_s      DOUBLE
        );

        CREATE TABLE model_versions (
            version         BIGINT PRIMARY KEY,
            name            VARCHAR NOT NULL,      -- the candidate's name in mldeck.toml
            kind            VARCHAR NOT NULL,      -- linear | random_forest | gradient_boosting | mlp
            task            VARCHAR NOT NULL,
            target          VARCHAR NOT NULL,
            training_run_id BIGINT NOT NULL,
            dataset_id      BIGINT NOT NULL,
            feature_hash    VARCHAR NOT NULL,
            onnx_hash       VARCHAR NOT NULL,
            native_hash     VARCHAR,
            params_json     VARCHAR NOT NULL,
            seed            BIGINT NOT NULL,
            device          VARCHAR NOT NULL,
            classes_json    VARCHAR,
            inputs_json     VARCHAR NOT NULL,      -- ONNX inputs: [{"name", "type"}]
            outputs_json    VARCHAR NOT NULL,
            parity_max_abs_diff DOUBLE NOT NULL,
            promotable      BOOLEAN NOT NULL,
            gates_json      VARCHAR NOT NULL,
            library_versions_json VARCHAR NOT NULL,
            status          VARCHAR NOT NULL,      -- registered | archived
            created_at      TIMESTAMP NOT NULL
        );

        CREATE TABLE metrics (
            version     BIGINT NOT NULL,
            split       VARCHAR NOT NULL,          -- holdout
            name        VARCHAR NOT NULL,
            value       DOUBLE,
            PRIMARY KEY (version, split, name)
        );

        CREATE TABLE aliases (
            alias       VARCHAR PRIMARY KEY,       -- champion | challenger
            version     BIGINT NOT NULL,
            updated_at  TIMESTAMP NOT NULL
        );

        CREATE TABLE audit_log (
            entry_id     BIGINT PRIMARY KEY,
            recorded_at  TIMESTAMP NOT NULL,
            actor        VARCHAR NOT NULL,
            action       VARCHAR NOT NULL,
            alias        VARCHAR,
            from_version BIGINT,
            to_version   BIGINT,
            reason       VARCHAR,
            details_json VARCHAR,
            prev_hash    VARCHAR NOT NULL,
            entry_hash   VARCHAR NOT NULL
        );
        """,
    ),
    Migration(
        2,
        "prediction log",
        """
        CREATE TABLE predictions (
            request_id    VARCHAR NOT NULL,        -- one id per request (OIP id, x-request-id)
            row_index     INTEGER NOT NULL,        -- the row's position in its request
            served_at     TIMESTAMP NOT NULL,
            model_version BIGINT NOT NULL,
            endpoint      VARCHAR NOT NULL,        -- infer | invocations
            inputs_json   VARCHAR NOT NULL,        -- {"column": value} for the row
            output_json   VARCHAR NOT NULL,        -- {"label", "probabilities"} | {"prediction"}
            latency_ms    DOUBLE NOT NULL,         -- the whole request's scoring latency
            shadow        BOOLEAN NOT NULL         -- true: a shadow challenger's output, never returned
        );
        CREATE INDEX predictions_request ON predictions (request_id);
        """,
    ),
    Migration(
        3,
        "drift monitoring",
        """
        CREATE TABLE reference_profiles (
            model_version BIGINT PRIMARY KEY,
            fingerprint   VARCHAR NOT NULL,        -- sha256 of profile_json
            profile_json  VARCHAR NOT NULL,        -- engine.monitoring.drift.ReferenceProfile
            created_at    TIMESTAMP NOT NULL
        );

        CREATE SEQUENCE drift_window_id_seq START 1;
        CREATE TABLE drift_windows (
            window_id        BIGINT PRIMARY KEY DEFAULT nextval('drift_window_id_seq'),
            model_version    BIGINT NOT NULL,      -- the champion the window was checked against
            source           VARCHAR NOT NULL,     -- batch | predictions
            batch_id         BIGINT,               -- source = batch: the ingested batch
            window_start     TIMESTAMP NOT NULL,
            window_end       TIMESTAMP NOT NULL,
            row_count        BIGINT NOT NULL,
            summary_json     VARCHAR NOT NULL,     -- engine.monitoring.drift.WindowSummary (additive)
            report_json      VARCHAR NOT NULL,     -- engine.monitoring.drift.DriftReport
            dataset_drift    BOOLEAN NOT NULL,
            drifted_features INTEGER NOT NULL,
            created_at       TIMESTAMP NOT NULL
        );
        CREATE INDEX drift_windows_created ON drift_windows (created_at);
        """,
    ),
    Migration(
        4,
        "labels, live performance, alerts",
        """
        CREATE TABLE labels (
            row_id        VARCHAR NOT NULL,        -- the id column's value, as text
            label         VARCHAR NOT NULL,        -- the label cast to the target's type, as text
            batch_id      BIGINT NOT NULL,         -- the labels file (batches.kind = 'labels')
            received_at   TIMESTAMP NOT NULL
        );
        CREATE INDEX labels_row ON labels (row_id);

        CREATE TABLE scored_rows (
            batch_id      BIGINT NOT NULL,         -- a monitored data batch
            model_version BIGINT NOT NULL,         -- the champion that scored it
            row_id        VARCHAR NOT NULL,
            predicted     VARCHAR,                 -- classification: the predicted class, as text
            score         DOUBLE,                  -- regression: the prediction
            probabilities DOUBLE[]                 -- classification: per class, classes_json order
        );
        CREATE INDEX scored_rows_row ON scored_rows (row_id);

        CREATE SEQUENCE performance_window_id_seq START 1;
        CREATE TABLE performance_windows (
            window_id     BIGINT PRIMARY KEY DEFAULT nextval('performance_window_id_seq'),
            source        VARCHAR NOT NULL,        -- batch | log
            window_ref    VARCHAR NOT NULL,        -- 'batch 12' | 'log 2024-06-01'
            model_version BIGINT NOT NULL,
            window_start  TIMESTAMP NOT NULL,
            window_end    TIMESTAMP NOT NULL,
            n_rows        BIGINT NOT NULL,         -- scored rows in the window
            n_labelled    BIGINT NOT NULL,         -- of which labelled so far
            metrics_json  VARCHAR NOT NULL,        -- live metrics on the labelled rows
            holdout_json  VARCHAR NOT NULL,        -- the version's registered holdout metrics
            updated_at    TIMESTAMP NOT NULL,
            UNIQUE (source, window_ref, model_version)
        );

        CREATE SEQUENCE alert_id_seq START 1;
        CREATE TABLE alerts (
            alert_id      BIGINT PRIMARY KEY DEFAULT nextval('alert_id_seq'),
            raised_at     TIMESTAMP NOT NULL,
            rule          VARCHAR NOT NULL,
            severity      VARCHAR NOT NULL,        -- warn | alert
            model_version INTEGER,
            window_kind   VARCHAR NOT NULL,        -- batch | labels | log | serving
            window_ref    VARCHAR NOT NULL,
            message       VARCHAR NOT NULL,
            evidence_json VARCHAR NOT NULL,
            status        VARCHAR NOT NULL         -- open | acknowledged
        );

        CREATE TABLE serving_errors (
            served_at     TIMESTAMP NOT NULL,
            endpoint      VARCHAR NOT NULL,        -- infer | invocations
            model_version BIGINT,
            status        INTEGER NOT NULL,        -- the HTTP status answered
            message       VARCHAR
        );
        CREATE INDEX serving_errors_at ON serving_errors (served_at);
        """,
    ),
    Migration(
        5,
        "provenance: the config and code each version was trained with",
        """
        -- One row per model version registered since this migration; versions
        -- registered before it have none and read as "not recorded".
        CREATE TABLE model_provenance (
            model_version BIGINT PRIMARY KEY,
            config_hash   VARCHAR,                 -- object store: mldeck.toml as it was
            mldeck_version VARCHAR,                -- the installed mldeck distribution
            git_commit    VARCHAR,                 -- the project folder's HEAD, when it is a git repo
            git_dirty     BOOLEAN,                 -- uncommitted changes in that repo
            recorded_at   TIMESTAMP NOT NULL
        );
        """,
    ),
    Migration(
        6,
        "engine daemon: pipeline jobs and retrain proposals",
        """
        CREATE SEQUENCE job_id_seq START 1;
        CREATE TABLE jobs (
            job_id       BIGINT PRIMARY KEY DEFAULT nextval('job_id_seq'),
            kind         VARCHAR NOT NULL,         -- train | retrain
            args_json    VARCHAR NOT NULL,
            status       VARCHAR NOT NULL,         -- queued | running | succeeded | failed
            submitted_at TIMESTAMP NOT NULL,
            started_at   TIMESTAMP,
            ended_at     TIMESTAMP,
            attempts     INTEGER NOT NULL,         -- > 1: redone after the engine stopped mid-job
            result_json  VARCHAR,
            error        VARCHAR
        );

        CREATE SEQUENCE retrain_proposal_id_seq START 1;
        CREATE TABLE retrain_proposals (
            proposal_id     BIGINT PRIMARY KEY DEFAULT nextval('retrain_proposal_id_seq'),
            created_at      TIMESTAMP NOT NULL,
            trigger         VARCHAR NOT NULL,      -- schedule | alert | labels | person
            evidence_json   VARCHAR NOT NULL,
            status          VARCHAR NOT NULL,      -- pending | accepted | dismissed
            decided_at      TIMESTAMP,
            decided_by      VARCHAR,
            decision_reason VARCHAR
        );
        """,
    ),
    Migration(
        7,
        "re-validated quarantined batches",
        """
        -- A quarantined batch that passes a later re-validation becomes a new batch
        -- (its source is the quarantined copy) that points back at the quarantined
        -- one; the quarantined row's status becomes 'revalidated'.
        ALTER TABLE batches ADD COLUMN revalidated_from BIGINT;
        """,
    ),
    Migration(
        8,
        "serving errors counted per window",
        """
        -- A serving_errors row now counts the failed requests of one
        -- (endpoint, version, status) in a window instead of being one request;
        -- rows written before this migration count one each.
        ALTER TABLE serving_errors ADD COLUMN requests BIGINT DEFAULT 1;
        """,
    ),
]
