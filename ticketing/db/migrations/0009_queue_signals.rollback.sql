DROP TABLE IF EXISTS queue_signal_cards;
ALTER TABLE queue_settings
    DROP COLUMN IF EXISTS cluster_rule,
    DROP COLUMN IF EXISTS cluster_threshold;
