-- 0004_model_format: which file format a model was uploaded in, the library version the file
-- declares, and its number of targets (xgboost multi-target models).  Models stored before this
-- migration were all xgboost JSON uploads with one target.

ALTER TABLE models
    ADD COLUMN format text NOT NULL DEFAULT 'xgboost-json'
        CHECK (format IN ('xgboost-json', 'xgboost-ubjson', 'lightgbm-text')),
    ADD COLUMN library_version text,                    -- "3.5.0"; NULL when the file declares none
    ADD COLUMN num_target integer NOT NULL DEFAULT 1 CHECK (num_target >= 1);

ALTER TABLE models ALTER COLUMN format DROP DEFAULT;
