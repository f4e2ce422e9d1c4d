-- 0005_explain: explanations (issue 13).  The policy's explain.top_k (0 = off; 5 by default, also
-- for the existing row) and each decision's reasons: the top-k features by |SHAP contribution| to
-- the champion's margin, as [{"feature", "value", "contribution"}].  NULL when explanations were
-- off, the champion could not be explained, or scoring failed (and for decisions made before).

ALTER TABLE policy
    ADD COLUMN explain_top_k integer NOT NULL DEFAULT 5 CHECK (explain_top_k BETWEEN 0 AND 20);

ALTER TABLE transactions
    ADD COLUMN reasons json;
