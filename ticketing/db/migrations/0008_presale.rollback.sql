DROP TABLE IF EXISTS presale_draw_superseded;
DROP TABLE IF EXISTS presale_draw_members;
DROP TABLE IF EXISTS presale_draws;
DROP TABLE IF EXISTS presale_registrations;
DROP TABLE IF EXISTS presales;
DROP FUNCTION IF EXISTS presale_fixed_after_draw();
DROP FUNCTION IF EXISTS presale_closed_after_draw();
DROP FUNCTION IF EXISTS presale_draw_is_final();
