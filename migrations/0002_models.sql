-- 0002_models: uploaded XGBoost models, their compiled form, and per-name versions.

CREATE TABLE models (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name           text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    version        integer NOT NULL CHECK (version >= 1),
    objective      text NOT NULL,
    booster        text NOT NULL,
    num_features   integer NOT NULL,
    num_class      integer NOT NULL,
    num_trees      integer NOT NULL,
    feature_names  text[],                 -- NULL when the model file has none
    feature_types  text[],
    base_score     real NOT NULL,
    sha256         text NOT NULL,          -- of the uploaded bytes, lower-case hex
    source         bytea NOT NULL,         -- the uploaded file, byte for byte
    compiled       bytea NOT NULL,         -- common/model.h blob, what the worker runs
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (name, version)
);

CREATE INDEX models_created_at_id ON models (created_at DESC, id DESC);
-- Large columns stay out of line and uncompressed-on-read cost is paid only by /source and loads.
ALTER TABLE models ALTER COLUMN source SET STORAGE EXTERNAL;
ALTER TABLE models ALTER COLUMN compiled SET STORAGE EXTERNAL;
