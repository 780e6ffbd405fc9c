// node-postgres (`pg`): parameterised queries (extended protocol, untyped text parameters the
// server must infer), array parameters (`= ANY($1)` with a JS array), named prepared
// statements, and the JS types pg gives each PostgreSQL type. Connection from PG* variables.
'use strict';
process.env.TZ = 'UTC'; // pg reads date and timestamp as local time: make that UTC
const fs = require('fs');
const path = require('path');
const { Client } = require('pg');

const S = 'clients_node';
let passed = 0;
const failed = [];

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed.push(name);
    const code = e.code ? ` [${e.code}]` : '';
    console.log(`not ok - ${name}: ${e.name}${code}: ${String(e.message).replace(/\s*\n\s*/g, ' | ')}`);
  }
}
function expectEqual(actual, expected, what) {
  const a = show(actual);
  const b = show(expected);
  if (a !== b) throw new Error(`${what}: expected ${b}, got ${a}`);
}
// A typed, comparable rendering: 42 vs "42", Date, Buffer, arrays.
function show(v) {
  if (v === null || v === undefined) return String(v);
  if (v instanceof Date) return `Date(${isNaN(v) ? 'invalid' : v.toISOString()})`;
  if (Buffer.isBuffer(v)) return `Buffer(${v.toString('hex')})`;
  if (Array.isArray(v)) return `[${v.map(show).join(', ')}]`;
  if (typeof v === 'object') return `{${Object.keys(v).map((k) => `${k}: ${show(v[k])}`).join(', ')}}`;
  return typeof v === 'string' ? JSON.stringify(v) : `${typeof v}:${v}`;
}

const sqlFile = fs.readFileSync(path.join(__dirname, '..', 'typed.sql'), 'utf8');
const statements = sqlFile.split('\n').filter((l) => !l.startsWith('--')).join('\n')
  .split(';\n').map((s) => s.trim()).filter(Boolean).map((s) => s.replace(/;$/, '').replaceAll('{schema}', S));
const NAMES = ['id', 'c_int', 'c_bigint', 'c_smallint', 'c_double', 'c_real', 'c_numeric', 'c_text',
  'c_bool', 'c_date', 'c_ts', 'c_tstz', 'c_bytea', 'c_text_arr', 'c_bigint_arr'];
const OIDS = [23, 23, 20, 21, 701, 700, 1700, 25, 16, 1082, 1114, 1184, 17, 1009, 1016];
const d = (iso) => new Date(iso);
// What pg gives by default: int8 and numeric as strings (no precision lost), dates as Date.
const EXPECTED = {
  1: [1, 42, '9007199254740993', 7, 0.1, 1.5, '12345.67', 'hello', true, d('2024-02-29T00:00:00Z'),
    d('2024-02-29T12:34:56.123Z'), d('2024-02-29T04:34:56.123Z'), Buffer.from('deadbeef', 'hex'),
    ['p', 'q r'], ['1', '9007199254740993']],
  2: [2, null, null, null, null, null, null, null, null, null, null, null, null, null, null],
  3: [3, -2147483648, '-9223372036854775808', -32768, -2.5e-7, -0.25, '-9999999999.99',
    '中文 ü "quoted" it\'s', false, d('1970-01-01T00:00:00Z'), d('1999-12-31T23:59:59Z'),
    d('1970-01-01T00:00:00Z'), Buffer.from('00ff', 'hex'), ['', null, 'a,b"c'], [null, '-1']],
  4: [4, 7, '8', 9, 0.5, 0.5, '-0.01', 'x', true, d('2000-01-01T00:00:00Z'), d('2000-01-01T00:00:00Z'),
    d('2000-01-01T00:00:00Z'), Buffer.alloc(0), ['p', 'q r'], ['1', '2']],
};
function rowProblems(row, id) {
  const want = EXPECTED[id];
  return NAMES.flatMap((n, i) => (show(row[n]) === show(want[i]) ? [] : [`${n}: expected ${show(want[i])}, got ${show(row[n])}`]));
}

async function main() {
  const client = new Client(); // PGHOST, PGPORT, PGUSER, PGDATABASE
  await client.connect();

  await check('create the typed table', async () => {
    for (const s of statements.filter((s) => !s.startsWith('INSERT'))) await client.query(s);
  });
  for (const s of statements.filter((s) => s.startsWith('INSERT'))) {
    await check(`insert typed row ${s.match(/VALUES \((\d+),/)[1]}`, () => client.query(s));
  }

  await check('typed rows read back as pg\'s JS types (field type OIDs too)', async () => {
    const res = await client.query(`SELECT ${NAMES.join(', ')} FROM ${S}.typed WHERE id <= 4 ORDER BY id`);
    expectEqual(res.fields.map((f) => f.dataTypeID), OIDS, 'field type OIDs');
    const problems = [1, 2, 3, 4].flatMap((id) => {
      const row = res.rows.find((r) => r.id === id);
      return row ? rowProblems(row, id).map((p) => `row ${id} ${p}`) : [`row ${id} missing`];
    });
    if (problems.length) throw new Error(problems.join('; '));
  });

  await check('insert with parameters of every type, read back', async () => {
    const values = [5, 42, '9007199254740993', 7, 0.1, 1.5, '12345.67', 'hello', true, '2024-02-29',
      '2024-02-29 12:34:56.123', new Date('2024-02-29T04:34:56.123Z'), Buffer.from('deadbeef', 'hex'),
      ['p', 'q r'], ['1', '9007199254740993']];
    await client.query(`INSERT INTO ${S}.typed VALUES (${values.map((_, i) => `$${i + 1}`).join(', ')})`, values);
    const res = await client.query(`SELECT * FROM ${S}.typed WHERE id = $1`, [5]);
    if (res.rows.length !== 1) throw new Error(`${res.rows.length} rows`);
    const problems = rowProblems({ ...res.rows[0], id: 1 }, 1);
    if (problems.length) throw new Error(problems.join('; '));
  });

  await check('= ANY($1) with a JS array (text and bigint)', async () => {
    let res = await client.query(`SELECT id FROM ${S}.typed WHERE c_text = ANY($1) ORDER BY id`, [['hello', 'x']]);
    expectEqual(res.rows.map((r) => r.id), [1, 4, 5], 'ids by text');
    res = await client.query(`SELECT id FROM ${S}.typed WHERE c_bigint = ANY($1) ORDER BY id`, [['8', '9007199254740993']]);
    expectEqual(res.rows.map((r) => r.id), [1, 4, 5], 'ids by bigint');
  });

  await check('parameters the server must type from context', async () => {
    const res = await client.query('SELECT $1::bigint + 1 AS n, $2::text AS s, $3::double precision * 2 AS d, '
      + '$4::timestamp AS ts, $5::boolean AS b, $6::date AS dt, $7::numeric(10,2) AS num',
    ['41', 'hi', 1.25, '2024-02-29 12:34:56', true, '2024-02-29', '3.14159']);
    expectEqual(res.rows[0], { n: '42', s: 'hi', d: 2.5, ts: d('2024-02-29T12:34:56Z'), b: true,
      dt: d('2024-02-29T00:00:00Z'), num: '3.14' }, 'row');
    const r2 = await client.query(`SELECT count(*) AS n FROM ${S}.typed WHERE c_int > $1 AND c_text <> $2`, [0, 'zzz']);
    expectEqual(r2.rows[0].n, '3', 'count with untyped parameters');
  });

  await check('named prepared statement reused', async () => {
    for (const id of [1, 3, 4]) {
      const res = await client.query({ name: 'typed-by-id', text: `SELECT id, c_numeric FROM ${S}.typed WHERE id = $1`, values: [id] });
      expectEqual(res.rows.map((r) => r.id), [id], 'id');
    }
  });

  await check('rowMode array and result types of expressions', async () => {
    const res = await client.query({ text: "SELECT 1::int2, 2::int4, 3::int8, 1.5::float4, 2.5::float8, 4.25::numeric, 'a'::text, true, ARRAY[1,2]::int4[], ARRAY['x']::text[]", rowMode: 'array' });
    expectEqual(res.fields.map((f) => f.dataTypeID), [21, 23, 20, 700, 701, 1700, 25, 16, 1007, 1009], 'OIDs');
    expectEqual(res.rows[0], [1, 2, '3', 1.5, 2.5, '4.25', 'a', true, [1, 2], ['x']], 'values');
  });

  await check('integer literals are int4 (a JS number), wider ones int8 (a string)', async () => {
    const res = await client.query('SELECT 2 AS two, 2147483648 AS big, 1.5 AS num');
    expectEqual(res.fields.map((f) => f.dataTypeID), [23, 20, 1700], 'OIDs');
    expectEqual(res.rows[0], { two: 2, big: '2147483648', num: '1.5' }, 'values');
  });

  await check('interval and now()-like expressions', async () => {
    const res = await client.query("SELECT interval '1 day 2 hours' AS iv, now() AS n, current_date AS cd, now() - interval '1 day' AS y");
    const { iv, n, cd, y } = res.rows[0];
    if (!(iv && iv.days === 1 && iv.hours === 2)) throw new Error(`interval: ${show(iv)}`);
    if (!(n instanceof Date) || Math.abs(n - Date.now()) > 300000) throw new Error(`now(): ${show(n)}`);
    if (!(cd instanceof Date)) throw new Error(`current_date: ${show(cd)}`);
    expectEqual(n - y, 86400000, 'now() - (now() - 1 day) in ms');
  });

  await check('demo view with a parameter (userql\'s customer_orders)', async () => {
    const res = await client.query('SELECT customer_id, count(*) AS orders, sum(amount) AS revenue FROM customer_orders '
      + 'WHERE amount > $1 GROUP BY customer_id ORDER BY revenue DESC LIMIT 5', [0]);
    if (res.rows.length === 0) throw new Error('no rows');
    expectEqual(res.fields.map((f) => f.dataTypeID), [20, 20, 701], 'OIDs');
  });

  await check('an error carries its SQLSTATE and the connection goes on', async () => {
    let err = null;
    try { await client.query('SELECT * FROM no_such_table_here WHERE x = $1', [1]); } catch (e) { err = e; }
    if (!err) throw new Error('no error');
    expectEqual(err.code, '42P01', 'SQLSTATE');
    expectEqual((await client.query('SELECT 2::int4 AS two')).rows[0].two, 2, 'after the error');
  });

  await client.end();
}

main().catch((e) => { failed.push('main'); console.log(`not ok - main: ${e.stack}`); }).finally(() => {
  console.log(`node-postgres: ${passed} passed, ${failed.length} failed`);
  process.exit(failed.length ? 1 : 0);
});
