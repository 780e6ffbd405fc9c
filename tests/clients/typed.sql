-- The type-fidelity table that every driver test creates, fills and reads back (each in its
-- own schema: {schema} is replaced by the test). One column per type userql stores (README,
-- "Types"); four rows: typical values, all NULLs, extremes, and PostgreSQL's quoted text
-- forms ('{p,"q r"}', '\x', '-0.005' rounded to the column's scale). One INSERT per row, so
-- that a refused row does not hide the others. The expected values live in each test.
DROP SCHEMA IF EXISTS {schema} CASCADE;
CREATE SCHEMA {schema};
CREATE TABLE {schema}.typed (id int NOT NULL, c_int int, c_bigint bigint, c_smallint smallint, c_double double precision, c_real real, c_numeric numeric(12,2), c_text text, c_bool boolean, c_date date, c_ts timestamp, c_tstz timestamptz, c_bytea bytea, c_text_arr text[], c_bigint_arr bigint[]);
INSERT INTO {schema}.typed VALUES (1, 42, 9007199254740993, 7, 0.1, 1.5, 12345.67, 'hello', true, DATE '2024-02-29', TIMESTAMP '2024-02-29 12:34:56.123456', TIMESTAMPTZ '2024-02-29 12:34:56.123456+08', '\xdeadbeef'::bytea, ARRAY['p', 'q r'], ARRAY[1, 9007199254740993]);
INSERT INTO {schema}.typed VALUES (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO {schema}.typed VALUES (3, -2147483648, -9223372036854775808, -32768, -2.5e-07, -0.25, -9999999999.99, '中文 ü "quoted" it''s', false, DATE '1970-01-01', TIMESTAMP '1999-12-31 23:59:59', TIMESTAMPTZ '1970-01-01 00:00:00+00', decode('00ff', 'hex'), ARRAY['', NULL, 'a,b"c'], ARRAY[NULL, -1]::bigint[]);
INSERT INTO {schema}.typed VALUES (4, '7', '8', '9', '0.5', '0.5', '-0.005', 'x', 't', '2000-01-01', '2000-01-01 00:00:00', '2000-01-01 00:00:00Z', '\x', '{p,"q r"}', '{1,2}');
