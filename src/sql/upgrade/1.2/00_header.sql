-- topgun 1.1 -> 1.2 (ALTER EXTENSION topgun UPDATE).
--
-- Assembled by the Makefile from src/sql/upgrade/1.2/NN_*.sql: each module
-- that adds or changes SQL objects in 1.2 puts its upgrade statements in a
-- part of its own, next to its part of the install script (src/sql/NN_*.sql);
-- a module that is new in 1.2 links its install part instead of copying it.
-- sql/10_upgrade.sql proves that 1.0 -> 1.1 -> 1.2 gives a schema identical
-- to a fresh 1.2 install.
\echo Use "ALTER EXTENSION topgun UPDATE" to load this file. \quit
