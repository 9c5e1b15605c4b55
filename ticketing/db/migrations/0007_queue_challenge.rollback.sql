ALTER TABLE queue_settings
    DROP COLUMN IF EXISTS challenge_difficulty,
    DROP COLUMN IF EXISTS challenge_auto;
