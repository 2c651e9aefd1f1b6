-- values_gen.sql captures real PostgreSQL text output and binary send
-- format for every case of TestGoldenValues. Run through values_gen.sh; the
-- test itself never needs a database.
--
-- Output, one case per line, tab-separated:
--   name, type oid, typtype, typbasetype, typelem, typcategory,
--   text output as a JSON string, binary send format in hex
\set ON_ERROR_STOP 1
\pset format unaligned
\pset tuples_only on
\pset fieldsep '\t'
SET client_min_messages = warning;
SET datestyle = 'ISO, MDY';
SET intervalstyle = 'postgres';
SET extra_float_digits = 1;
SET bytea_output = 'hex';
SET timezone = 'UTC';

CREATE TEMP TABLE golden (
	seq serial, name text, typ oid, txt text, bin bytea
);
CREATE TYPE pg_temp.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN pg_temp.posint AS int4 CHECK (VALUE > 0);
CREATE DOMAIN pg_temp.int_list AS int4[];
CREATE TYPE pg_temp.pair AS (a int4, b text);

-- add records v under its own type. The value's text is its output
-- function's (format %s), as pgoutput sends it; the binary is cut from
-- record_send(ROW(v)): 4 bytes column count, 4 type oid, 4 length, data.
CREATE FUNCTION pg_temp.add(name text, v anyelement) RETURNS void LANGUAGE sql AS $$
	INSERT INTO golden (name, typ, txt, bin)
	VALUES (name, pg_typeof(v), format('%s', v), substring(record_send(ROW(v)) FROM 13));
$$;
-- add_as records v under typ: a domain, whose values reach a polymorphic
-- function as the base type but are published under the domain's oid.
CREATE FUNCTION pg_temp.add_as(name text, typ regtype, v anyelement) RETURNS void LANGUAGE sql AS $$
	INSERT INTO golden (name, typ, txt, bin)
	VALUES (name, typ, format('%s', v), substring(record_send(ROW(v)) FROM 13));
$$;

SELECT pg_temp.add('bool_true', true);
SELECT pg_temp.add('bool_false', false);
SELECT pg_temp.add('bytea', '\x00ff10'::bytea);
SELECT pg_temp.add('bytea_empty', ''::bytea);
SELECT pg_temp.add('char', 'a'::"char");
SELECT pg_temp.add('char_quote', '"'::"char");
SELECT pg_temp.add('char_highbit', 'é'::"char");
SELECT pg_temp.add('char_nul', ''::"char");
SELECT pg_temp.add('name', 'pg_class'::name);
SELECT pg_temp.add('int2_zero', 0::int2);
SELECT pg_temp.add('int2_min', (-32768)::int2);
SELECT pg_temp.add('int2_max', 32767::int2);
SELECT pg_temp.add('int4', 42::int4);
SELECT pg_temp.add('int4_min', (-2147483648)::int4);
SELECT pg_temp.add('int4_max', 2147483647::int4);
SELECT pg_temp.add('int8_min', (-9223372036854775808)::int8);
SELECT pg_temp.add('int8_max', 9223372036854775807::int8);
SELECT pg_temp.add('oid_max', 4294967295::oid);
SELECT pg_temp.add('oid_zero', 0::oid);
SELECT pg_temp.add('text', 'hello'::text);
SELECT pg_temp.add('text_empty', ''::text);
SELECT pg_temp.add('text_escapes', E'quote " backslash \\ tab \t newline \n cr \r bell \x07 del \x7f'::text);
SELECT pg_temp.add('text_unicode', 'héllo ☃ 😀 ' || chr(8232) || chr(8233)::text);
SELECT pg_temp.add('text_html', '<script>&amp;</script>'::text);
SELECT pg_temp.add('varchar', 'abc'::varchar(10));
SELECT pg_temp.add('bpchar_padded', 'ab'::char(5));
SELECT pg_temp.add('bpchar_inner_space', 'a b'::char(6));
SELECT pg_temp.add('bpchar_blank', ''::char(3));
SELECT pg_temp.add('xml', '<a x="1">t</a>'::xml);
SELECT pg_temp.add('json', '{"a": [1, 2.5, "x"],  "b":null}'::json);
SELECT pg_temp.add('json_scalar', '"s"'::json);
SELECT pg_temp.add('jsonb', '{"b": 1, "a": [true, null, "é"]}'::jsonb);
SELECT pg_temp.add('float4', 1.5::float4);
SELECT pg_temp.add('float4_tenth', 0.1::float4);
SELECT pg_temp.add('float4_max', 3.4028235e38::float4);
SELECT pg_temp.add('float4_small', 1.17549435e-38::float4);
SELECT pg_temp.add('float4_1e-7', 1e-7::float4);
SELECT pg_temp.add('float4_nan', 'NaN'::float4);
SELECT pg_temp.add('float4_inf', 'Infinity'::float4);
SELECT pg_temp.add('float4_ninf', '-Infinity'::float4);
SELECT pg_temp.add('float8_tenth', 0.1::float8);
SELECT pg_temp.add('float8_neg_zero', '-0'::float8);
SELECT pg_temp.add('float8_1e21', 1e21::float8);
SELECT pg_temp.add('float8_1e20', 1e20::float8);
SELECT pg_temp.add('float8_1e-7', 1e-7::float8);
SELECT pg_temp.add('float8_mixed', 123456789.123::float8);
SELECT pg_temp.add('float8_max', 1.7976931348623157e308::float8);
SELECT pg_temp.add('float8_denormal', 5e-324::float8);
SELECT pg_temp.add('float8_nan', 'NaN'::float8);
SELECT pg_temp.add('float8_inf', 'Infinity'::float8);
SELECT pg_temp.add('float8_ninf', '-Infinity'::float8);
SELECT pg_temp.add('numeric_zero', 0::numeric);
SELECT pg_temp.add('numeric_zero_scale', 0.00::numeric);
SELECT pg_temp.add('numeric', 1.5::numeric);
SELECT pg_temp.add('numeric_neg_scale', (-123.450)::numeric);
SELECT pg_temp.add('numeric_small', 0.0001::numeric);
SELECT pg_temp.add('numeric_tiny', 1e-20::numeric);
SELECT pg_temp.add('numeric_big', 12345678901234567890.123456789::numeric);
SELECT pg_temp.add('numeric_10000', 10000::numeric);
SELECT pg_temp.add('numeric_1e10', 1.0e10::numeric);
SELECT pg_temp.add('numeric_half', (-0.5)::numeric);
SELECT pg_temp.add('numeric_typmod', 3.1::numeric(10,4));
SELECT pg_temp.add('numeric_nan', 'NaN'::numeric);
SELECT pg_temp.add('numeric_inf', 'Infinity'::numeric);
SELECT pg_temp.add('numeric_ninf', '-Infinity'::numeric);
SELECT pg_temp.add('date', '2024-01-15'::date);
SELECT pg_temp.add('date_epoch', '1970-01-01'::date);
SELECT pg_temp.add('date_before_epoch', '1969-12-31'::date);
SELECT pg_temp.add('date_pg_epoch', '2000-01-01'::date);
SELECT pg_temp.add('date_bc', '0044-03-15 BC'::date);
SELECT pg_temp.add('date_min', '4714-11-24 BC'::date);
SELECT pg_temp.add('date_max', '5874897-12-31'::date);
SELECT pg_temp.add('date_inf', 'infinity'::date);
SELECT pg_temp.add('date_ninf', '-infinity'::date);
SELECT pg_temp.add('time_midnight', '00:00:00'::time);
SELECT pg_temp.add('time', '12:30:45.123456'::time);
SELECT pg_temp.add('time_fraction', '23:59:59.5'::time);
SELECT pg_temp.add('time_24', '24:00:00'::time);
SELECT pg_temp.add('timetz', '12:30:00+05:30'::timetz);
SELECT pg_temp.add('timetz_west', '20:00:00-08'::timetz);
SELECT pg_temp.add('timetz_utc', '23:59:59.5+00'::timetz);
SELECT pg_temp.add('timetz_seconds', '01:00:00+03:00:15'::timetz);
SELECT pg_temp.add('timestamp', '2024-01-15 12:30:00.123456'::timestamp);
SELECT pg_temp.add('timestamp_before_epoch', '1969-12-31 23:59:59.999999'::timestamp);
SELECT pg_temp.add('timestamp_bc', '0044-03-15 12:00:00 BC'::timestamp);
SELECT pg_temp.add('timestamp_y10000', '10000-01-01 00:00:00'::timestamp);
SELECT pg_temp.add('timestamp_inf', 'infinity'::timestamp);
SELECT pg_temp.add('timestamp_ninf', '-infinity'::timestamp);
SELECT pg_temp.add('timestamptz_utc', '2024-01-15 12:30:00.123456+00'::timestamptz);
SELECT pg_temp.add('timestamptz_bc', '0044-03-15 12:00:00+00 BC'::timestamptz);
SELECT pg_temp.add('timestamptz_inf', 'infinity'::timestamptz);
SELECT pg_temp.add('timestamptz_ninf', '-infinity'::timestamptz);
SET timezone = 'Asia/Kolkata';
SELECT pg_temp.add('timestamptz_kolkata', '2024-01-15 12:30:00+00'::timestamptz);
SET timezone = 'America/Los_Angeles';
SELECT pg_temp.add('timestamptz_la', '2024-07-04 09:00:00.5+00'::timestamptz);
SET timezone = 'Europe/Paris';
SELECT pg_temp.add('timestamptz_lmt', '1890-01-01 12:00:00+00'::timestamptz);
SET timezone = 'UTC';
SELECT pg_temp.add('interval', '1 year 2 mons 3 days 04:05:06.789'::interval);
SELECT pg_temp.add('interval_mixed', '-1 days +02:03:00'::interval);
SELECT pg_temp.add('interval_zero', '0'::interval);
SELECT pg_temp.add('interval_day', '1 day'::interval);
SELECT pg_temp.add('interval_neg_second', '-1 second'::interval);
SELECT pg_temp.add('interval_years', '2 years'::interval);
SELECT pg_temp.add('interval_neg_month', '-1 mons'::interval);
SELECT pg_temp.add('interval_hours', '100000 hours'::interval);
SELECT pg_temp.add('interval_all_neg', '-1 years -2 mons -3 days -04:05:06'::interval);
SELECT pg_temp.add('interval_overflow', '178000000 years'::interval);
SELECT pg_temp.add('interval_max_time', '2562047788 hours 54.775807 seconds'::interval);
SELECT pg_temp.add('uuid', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid);
SELECT pg_temp.add('array_int4', '{1,2,NULL,3}'::int4[]);
SELECT pg_temp.add('array_empty', '{}'::int4[]);
SELECT pg_temp.add('array_2d', '{{1,2},{3,4}}'::int4[]);
SELECT pg_temp.add('array_3d', '{{{1},{2}},{{3},{4}}}'::int8[]);
SELECT pg_temp.add('array_lower_bound', '[0:1]={5,6}'::int4[]);
SELECT pg_temp.add('array_text', ARRAY['a b', '', NULL, 'NULL', 'null', 'quo"te', 'back\slash', 'x,y', '{br}', ' pad ', 'é']::text[]);
SELECT pg_temp.add('array_varchar', ARRAY['v1', 'v 2']::varchar[]);
SELECT pg_temp.add('array_bpchar', ARRAY['ab', 'c']::char(4)[]);
SELECT pg_temp.add('array_bool', ARRAY[true, false, NULL]::bool[]);
SELECT pg_temp.add('array_bytea', ARRAY['\x01ff'::bytea, NULL, ''::bytea]);
SELECT pg_temp.add('array_int2', ARRAY[1, -1]::int2[]);
SELECT pg_temp.add('array_int8', ARRAY[9223372036854775807]::int8[]);
SELECT pg_temp.add('array_float4', ARRAY[1.5, 'NaN']::float4[]);
SELECT pg_temp.add('array_float8', ARRAY[0.1, '-Infinity', 1e300]::float8[]);
SELECT pg_temp.add('array_numeric', ARRAY[1.50, 'NaN', -0.001]::numeric[]);
SELECT pg_temp.add('array_date', ARRAY['2024-01-15', 'infinity']::date[]);
SELECT pg_temp.add('array_time', ARRAY['12:00:00.25']::time[]);
SELECT pg_temp.add('array_timetz', ARRAY['12:00:00+01']::timetz[]);
SELECT pg_temp.add('array_timestamp', ARRAY['2024-01-15 12:30:00', '-infinity']::timestamp[]);
SELECT pg_temp.add('array_timestamptz', ARRAY['2024-01-15 12:30:00+00']::timestamptz[]);
SELECT pg_temp.add('array_interval', ARRAY['1 day 01:00:00', '-1 mons']::interval[]);
SELECT pg_temp.add('array_uuid', ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11']::uuid[]);
SELECT pg_temp.add('array_json', ARRAY['{"a": "b,c"}', '[1]']::json[]);
SELECT pg_temp.add('array_jsonb', ARRAY['{"a": 1}']::jsonb[]);
SELECT pg_temp.add('array_oid', ARRAY[1, 4294967295]::oid[]);
SELECT pg_temp.add('array_char', ARRAY['a', ',', '"']::"char"[]);
SELECT pg_temp.add('array_name', ARRAY['pg_class']::name[]);
SELECT pg_temp.add('array_xml', ARRAY['<a/>']::xml[]);
SELECT pg_temp.add('enum', 'happy'::pg_temp.mood);
SELECT pg_temp.add('array_enum', ARRAY['sad', 'ok']::pg_temp.mood[]);
SELECT pg_temp.add_as('domain_int', 'pg_temp.posint', 5::int4);
SELECT pg_temp.add_as('domain_array', 'pg_temp.int_list', '{1,2}'::int4[]);
SELECT pg_temp.add('array_of_domain', ARRAY[1, 2]::pg_temp.posint[]);
SELECT pg_temp.add('other_point', '(1,2.5)'::point);
SELECT pg_temp.add('other_inet', '192.168.0.1/24'::inet);
SELECT pg_temp.add('other_int4range', '[1,10)'::int4range);
SELECT pg_temp.add('other_composite', ROW(1, 'x y')::pg_temp.pair);
SELECT pg_temp.add('other_box_array', '{(1,1),(0,0);(2,2),(1,1)}'::box[]);
SELECT pg_temp.add('other_point_array', ARRAY['(1,2)']::point[]);

SELECT g.name, g.typ, t.typtype, t.typbasetype, t.typelem, t.typcategory,
	to_json(g.txt), encode(g.bin, 'hex')
FROM golden g JOIN pg_type t ON t.oid = g.typ
ORDER BY g.seq;
