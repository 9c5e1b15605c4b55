DROP TABLE IF EXISTS queue_draw_superseded;
DROP TABLE IF EXISTS queue_draw_members;
DROP TABLE IF EXISTS queue_draws;
DROP FUNCTION IF EXISTS queue_draw_members_not_after_reveal();
DROP FUNCTION IF EXISTS queue_draw_is_final();
