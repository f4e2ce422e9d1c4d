-- 0010_backtest_challenger: the candidate challenger's score beside the champion's (issue 14).
--
-- A backtest whose candidate has a challenger reports the challenger's ROC/PR AUC next to the
-- champion's: each labelled row keeps both scores until the job's AUCs are computed.  A row one
-- model could not score has NULL in that model's column.
ALTER TABLE backtest_scores
    ALTER COLUMN score DROP NOT NULL,
    ADD COLUMN challenger_score real;
