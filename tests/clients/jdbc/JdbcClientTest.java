// pgjdbc (the driver of Metabase, DBeaver and most JVM tools): DatabaseMetaData as a BI tool
// syncs it, a typed PreparedStatement, and every stored type read back with its getter and as
// getObject, in text and in binary transfer. Connection from the PG* environment.
import java.math.BigDecimal;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.*;
import java.time.*;
import java.util.*;
import org.postgresql.util.PGInterval;

public class JdbcClientTest {
    static final String S = "clients_jdbc";
    static final boolean ON_USERQL = !"postgres".equals(System.getenv("CLIENTS_TARGET"));
    static int passed = 0;
    static final List<String> failed = new ArrayList<>();

    interface Body { void run() throws Exception; }

    static void check(String name, Body body) {
        try {
            body.run();
            passed++;
            System.out.println("ok - " + name);
        } catch (Throwable e) {
            failed.add(name);
            String state = e instanceof SQLException ? " [" + ((SQLException) e).getSQLState() + "]" : "";
            String msg = String.valueOf(e.getMessage()).replaceAll("\\s*\\n\\s*", " | ");
            System.out.println("not ok - " + name + ": " + e.getClass().getSimpleName() + state + ": " + msg);
        }
    }

    static void expectEqual(Object actual, Object expected, String what) {
        if (!Objects.equals(actual, expected))
            throw new AssertionError(what + ": expected " + expected + ", got " + actual);
    }

    static String url(String extra) {
        String host = System.getenv().getOrDefault("PGHOST", "127.0.0.1");
        String port = System.getenv().getOrDefault("PGPORT", "5432");
        String db = System.getenv().getOrDefault("PGDATABASE", "userql");
        String user = System.getenv().getOrDefault("PGUSER", "analyst");
        return "jdbc:postgresql://" + host + ":" + port + "/" + db + "?user=" + user + "&sslmode=disable" + extra;
    }

    static final String[] NAMES = {"id", "c_int", "c_bigint", "c_smallint", "c_double", "c_real", "c_numeric",
        "c_text", "c_bool", "c_date", "c_ts", "c_tstz", "c_bytea", "c_text_arr", "c_bigint_arr"};
    static final String[] TYPE_NAMES = {"int4", "int4", "int8", "int2", "float8", "float4", "numeric", "text",
        "bool", "date", "timestamp", "timestamptz", "bytea", "_text", "_int8"};
    static final int[] SQL_TYPES = {Types.INTEGER, Types.INTEGER, Types.BIGINT, Types.SMALLINT, Types.DOUBLE,
        Types.REAL, Types.NUMERIC, Types.VARCHAR, Types.BIT, Types.DATE, Types.TIMESTAMP, Types.TIMESTAMP,
        Types.BINARY, Types.ARRAY, Types.ARRAY};
    // Each row of typed.sql as the typed getters render it (see render()).
    static final Map<Integer, List<String>> EXPECTED = Map.of(
        1, List.of("1", "42", "9007199254740993", "7", "0.1", "1.5", "12345.67", "hello", "true", "2024-02-29",
            "2024-02-29T12:34:56.123456", "2024-02-29T04:34:56.123456Z", "deadbeef", "[p, q r]", "[1, 9007199254740993]"),
        2, List.of("2", "null", "null", "null", "null", "null", "null", "null", "null", "null", "null", "null", "null",
            "null", "null"),
        3, List.of("3", "-2147483648", "-9223372036854775808", "-32768", "-2.5E-7", "-0.25", "-9999999999.99",
            "中文 ü \"quoted\" it's", "false", "1970-01-01", "1999-12-31T23:59:59", "1970-01-01T00:00:00Z", "00ff",
            "[, null, a,b\"c]", "[null, -1]"),
        4, List.of("4", "7", "8", "9", "0.5", "0.5", "-0.01", "x", "true", "2000-01-01", "2000-01-01T00:00",
            "2000-01-01T00:00:00Z", "", "[p, q r]", "[1, 2]"));

    /** One column read with the getter a JVM application would use for its type. */
    static String render(ResultSet rs, int i) throws SQLException {
        String v;
        switch (i) {
            case 1: case 2: v = String.valueOf(rs.getInt(i)); break;
            case 3: v = String.valueOf(rs.getLong(i)); break;
            case 4: v = String.valueOf(rs.getShort(i)); break;
            case 5: v = String.valueOf(rs.getDouble(i)); break;
            case 6: v = String.valueOf(rs.getFloat(i)); break;
            case 7: v = String.valueOf(rs.getBigDecimal(i)); break;
            case 8: v = rs.getString(i); break;
            case 9: v = String.valueOf(rs.getBoolean(i)); break;
            case 10: v = String.valueOf(rs.getObject(i, LocalDate.class)); break;
            case 11: v = String.valueOf(rs.getObject(i, LocalDateTime.class)); break;
            case 12: { OffsetDateTime t = rs.getObject(i, OffsetDateTime.class); v = t == null ? "null" : t.toInstant().toString(); break; }
            case 13: { byte[] b = rs.getBytes(i); v = b == null ? "null" : HexFormat.of().formatHex(b); break; }
            default: { Array a = rs.getArray(i); v = a == null ? "null" : Arrays.toString((Object[]) a.getArray()); }
        }
        return rs.wasNull() ? "null" : v;
    }

    static void checkTypedRows(Connection conn, String what) throws SQLException {
        List<String> problems = new ArrayList<>();
        // pgjdbc switches a statement to a server-prepared one (and binary results) from its
        // 5th execution, or from the first with prepareThreshold=-1: run it past that point.
        for (int run = 0; run < 6; run++) {
            try (PreparedStatement ps = conn.prepareStatement("SELECT " + String.join(", ", NAMES) + " FROM " + S
                    + ".typed WHERE id <= ? ORDER BY id")) {
                ps.setInt(1, 4);
                try (ResultSet rs = ps.executeQuery()) {
                    Set<Integer> seen = new HashSet<>();
                    while (rs.next()) {
                        int id = rs.getInt(1);
                        seen.add(id);
                        for (int i = 1; i <= NAMES.length; i++) {
                            String got = render(rs, i), want = EXPECTED.get(id).get(i - 1);
                            if (!want.equals(got))
                                problems.add("run " + run + " row " + id + " " + NAMES[i - 1] + ": expected " + want + ", got " + got);
                        }
                    }
                    for (int id = 1; id <= 4; id++) if (!seen.contains(id)) problems.add("row " + id + " missing");
                }
            }
            if (!problems.isEmpty()) break;
        }
        if (!problems.isEmpty()) throw new AssertionError(what + ": " + String.join("; ", problems));
    }

    static List<String> column(ResultSet rs, String... names) throws SQLException {
        List<String> out = new ArrayList<>();
        while (rs.next()) {
            StringBuilder sb = new StringBuilder();
            for (String n : names) sb.append(sb.length() > 0 ? "|" : "").append(rs.getString(n));
            out.add(sb.toString());
        }
        rs.close();
        return out;
    }

    public static void main(String[] args) throws Exception {
        String typedSql = Files.readString(Path.of(System.getProperty("typed.sql", "../typed.sql")));
        List<String> statements = new ArrayList<>();
        for (String s : typedSql.replaceAll("(?m)^--.*\\n", "").split(";\\n"))
            if (!s.isBlank()) statements.add(s.trim().replaceAll(";$", "").replace("{schema}", S));

        try (Connection conn = DriverManager.getConnection(url(""))) {
            check("create the typed table", () -> {
                try (Statement st = conn.createStatement()) {
                    for (String s : statements) if (!s.startsWith("INSERT")) st.execute(s);
                }
            });
            for (String s : statements) {
                if (!s.startsWith("INSERT")) continue;
                check("insert typed row " + s.replaceAll("(?s).*VALUES \\((\\d+),.*", "$1"), () -> {
                    try (Statement st = conn.createStatement()) { st.execute(s); }
                });
            }
            check("create a table with a primary key", () -> {
                try (Statement st = conn.createStatement()) {
                    st.execute("CREATE TABLE " + S + ".customers (id bigint NOT NULL PRIMARY KEY, name text NOT NULL)");
                }
            });
            check("create a table with a foreign key (REFERENCES)", () -> {
                String cols = "(id bigint NOT NULL PRIMARY KEY, customer_id bigint%s, amount numeric(10,2))";
                try (Statement st = conn.createStatement()) {
                    st.execute("CREATE TABLE " + S + ".orders " + String.format(cols, " REFERENCES " + S + ".customers (id)"));
                } catch (SQLException e) {
                    // still fails this check; the table without the clause lets the later checks run
                    try (Statement st = conn.createStatement()) {
                        st.execute("CREATE TABLE IF NOT EXISTS " + S + ".orders " + String.format(cols, ""));
                    }
                    throw e;
                }
            });
            check("create a view", () -> {
                try (Statement st = conn.createStatement()) {
                    st.execute("CREATE VIEW " + S + ".order_totals AS SELECT customer_id, sum(amount) AS total FROM "
                        + S + ".orders GROUP BY customer_id");
                }
            });
            check("CREATE INDEX", () -> {
                try (Statement st = conn.createStatement()) {
                    st.execute("CREATE INDEX orders_customer_idx ON " + S + ".orders (customer_id)");
                }
            });

            DatabaseMetaData md = conn.getMetaData();
            check("DatabaseMetaData product and driver", () -> {
                expectEqual(md.getDatabaseProductName(), "PostgreSQL", "product name");
                if (md.getDatabaseMajorVersion() < 9) throw new AssertionError("major version " + md.getDatabaseMajorVersion());
                expectEqual(md.getIdentifierQuoteString(), "\"", "quote");
            });
            check("DatabaseMetaData.getSchemas", () -> {
                List<String> s = column(md.getSchemas(), "TABLE_SCHEM");
                for (String want : List.of("public", "channels", S))
                    if (!s.contains(want)) throw new AssertionError(want + " not in " + s);
            });
            check("DatabaseMetaData.getCatalogs", () -> expectEqual(column(md.getCatalogs(), "TABLE_CAT"),
                List.of(System.getenv().getOrDefault("PGDATABASE", "userql")), "catalogs"));
            check("DatabaseMetaData.getTables (tables and views)", () -> {
                expectEqual(column(md.getTables(null, S, "%", new String[] {"TABLE", "VIEW"}), "TABLE_NAME", "TABLE_TYPE"),
                    List.of("customers|TABLE", "orders|TABLE", "typed|TABLE", "order_totals|VIEW"), "own schema");
                List<String> views = column(md.getTables(null, "public", "%", new String[] {"VIEW"}), "TABLE_NAME");
                if (!views.containsAll(List.of("orders", "customer_orders", "identities", "events")))
                    throw new AssertionError("public views " + views);
                List<String> ch = column(md.getTables(null, "channels", "%", null), "TABLE_NAME");
                if (!ch.containsAll(List.of("tmall", "pos"))) throw new AssertionError("channels " + ch);
            });
            check("DatabaseMetaData.getColumns (types, sizes, nullability)", () -> {
                List<String> got = column(md.getColumns(null, S, "typed", "%"), "COLUMN_NAME", "DATA_TYPE", "TYPE_NAME", "NULLABLE");
                List<String> want = new ArrayList<>();
                for (int i = 0; i < NAMES.length; i++)
                    want.add(NAMES[i] + "|" + SQL_TYPES[i] + "|" + TYPE_NAMES[i] + "|" + (i == 0 ? 0 : 1));
                expectEqual(got, want, "typed columns");
                expectEqual(column(md.getColumns(null, S, "typed", "c_numeric"), "COLUMN_SIZE", "DECIMAL_DIGITS"),
                    List.of("12|2"), "numeric(12,2) size");
                expectEqual(column(md.getColumns(null, "public", "orders", "%"), "COLUMN_NAME", "TYPE_NAME"),
                    List.of("channel|text", "record_id|text", "order_ts|timestamp", "amount|float8"), "public.orders");
            });
            // userql keeps no keys or indexes (README, "Tables you write"): the calls must run and
            // answer "none"; PostgreSQL answers with what was declared.
            check("DatabaseMetaData.getPrimaryKeys", () -> expectEqual(
                column(md.getPrimaryKeys(null, S, "customers"), "COLUMN_NAME", "KEY_SEQ"),
                ON_USERQL ? List.of() : List.of("id|1"), "primary key"));
            check("DatabaseMetaData.getImportedKeys", () -> expectEqual(
                column(md.getImportedKeys(null, S, "orders"), "FKCOLUMN_NAME", "PKTABLE_NAME", "PKCOLUMN_NAME"),
                ON_USERQL ? List.of() : List.of("customer_id|customers|id"), "imported keys"));
            check("DatabaseMetaData.getExportedKeys", () -> expectEqual(
                column(md.getExportedKeys(null, S, "customers"), "FKTABLE_NAME", "FKCOLUMN_NAME"),
                ON_USERQL ? List.of() : List.of("orders|customer_id"), "exported keys"));
            check("DatabaseMetaData.getIndexInfo", () -> {
                expectEqual(column(md.getIndexInfo(null, S, "orders", false, true), "INDEX_NAME", "COLUMN_NAME", "NON_UNIQUE"),
                    ON_USERQL ? List.of() : List.of("orders_pkey|id|f", "orders_customer_idx|customer_id|t"), "orders indexes");
            });
            check("DatabaseMetaData.getTypeInfo / getFunctions", () -> {
                List<String> types = column(md.getTypeInfo(), "TYPE_NAME");
                if (!types.containsAll(List.of("int4", "int8", "text", "numeric", "timestamptz")))
                    throw new AssertionError("type info " + types.size() + " types");
                column(md.getFunctions(null, "public", "%"), "FUNCTION_NAME");
            });

            check("typed PreparedStatement: parameters of each type", () -> {
                try (PreparedStatement ps = conn.prepareStatement(
                        "SELECT ?::bigint + 1 AS n, ?::text AS s, ?::double precision * 2 AS d, ?::timestamp AS ts, ?::boolean AS b")) {
                    ps.setLong(1, 41);
                    ps.setString(2, "hi");
                    ps.setDouble(3, 1.25);
                    ps.setTimestamp(4, Timestamp.valueOf("2024-02-29 12:34:56"));
                    ps.setBoolean(5, true);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        expectEqual(rs.getLong("n"), 42L, "n");
                        expectEqual(rs.getString("s"), "hi", "s");
                        expectEqual(rs.getDouble("d"), 2.5, "d");
                        expectEqual(rs.getObject("ts", LocalDateTime.class), LocalDateTime.of(2024, 2, 29, 12, 34, 56), "ts");
                        expectEqual(rs.getBoolean("b"), true, "b");
                    }
                }
            });
            check("PreparedStatement INSERT with a setter per type, read back", () -> {
                String marks = String.join(", ", Collections.nCopies(NAMES.length, "?"));
                try (PreparedStatement ps = conn.prepareStatement("INSERT INTO " + S + ".typed VALUES (" + marks + ")")) {
                    ps.setInt(1, 5);
                    ps.setInt(2, 42);
                    ps.setLong(3, 9007199254740993L);
                    ps.setShort(4, (short) 7);
                    ps.setDouble(5, 0.1);
                    ps.setFloat(6, 1.5f);
                    ps.setBigDecimal(7, new BigDecimal("12345.67"));
                    ps.setString(8, "hello");
                    ps.setBoolean(9, true);
                    ps.setObject(10, LocalDate.of(2024, 2, 29));
                    ps.setObject(11, LocalDateTime.of(2024, 2, 29, 12, 34, 56, 123456000));
                    ps.setObject(12, OffsetDateTime.of(2024, 2, 29, 12, 34, 56, 123456000, ZoneOffset.ofHours(8)));
                    ps.setBytes(13, HexFormat.of().parseHex("deadbeef"));
                    ps.setArray(14, conn.createArrayOf("text", new String[] {"p", "q r"}));
                    ps.setArray(15, conn.createArrayOf("int8", new Long[] {1L, 9007199254740993L}));
                    expectEqual(ps.executeUpdate(), 1, "update count");
                }
                try (Statement st = conn.createStatement();
                     ResultSet rs = st.executeQuery("SELECT " + String.join(", ", NAMES) + " FROM " + S + ".typed WHERE id = 5")) {
                    if (!rs.next()) throw new AssertionError("row 5 missing");
                    List<String> got = new ArrayList<>();
                    for (int i = 2; i <= NAMES.length; i++) got.add(render(rs, i));
                    expectEqual(got, EXPECTED.get(1).subList(1, NAMES.length), "row 5");
                }
            });
            check("every column type read back (text transfer)", () -> checkTypedRows(conn, "text"));
            check("ResultSetMetaData and getObject classes", () -> {
                try (Statement st = conn.createStatement();
                     ResultSet rs = st.executeQuery("SELECT " + String.join(", ", NAMES) + " FROM " + S + ".typed WHERE id = 1")) {
                    ResultSetMetaData m = rs.getMetaData();
                    List<String> got = new ArrayList<>(), want = new ArrayList<>();
                    rs.next();
                    String[] classes = {"Integer", "Integer", "Long", "Integer", "Double", "Float", "BigDecimal", "String",
                        "Boolean", "Date", "Timestamp", "Timestamp", "byte[]", "PgArray", "PgArray"};
                    for (int i = 1; i <= NAMES.length; i++) {
                        got.add(m.getColumnName(i) + "|" + m.getColumnTypeName(i) + "|" + m.getColumnType(i) + "|"
                            + rs.getObject(i).getClass().getSimpleName());
                        want.add(NAMES[i - 1] + "|" + TYPE_NAMES[i - 1] + "|" + SQL_TYPES[i - 1] + "|" + classes[i - 1]);
                    }
                    expectEqual(got, want, "columns");
                }
            });
            check("interval and now()-like expressions", () -> {
                try (Statement st = conn.createStatement();
                     ResultSet rs = st.executeQuery("SELECT interval '1 day 2 hours', now(), current_date, now() - interval '1 day'")) {
                    rs.next();
                    PGInterval iv = (PGInterval) rs.getObject(1);
                    expectEqual(iv.getDays() + "d" + iv.getHours() + "h", "1d2h", "interval");
                    OffsetDateTime now = rs.getObject(2, OffsetDateTime.class);
                    if (Math.abs(Duration.between(now.toInstant(), Instant.now()).toSeconds()) > 300)
                        throw new AssertionError("now() " + now);
                    expectEqual(rs.getObject(3).getClass().getSimpleName(), "Date", "current_date class");
                    expectEqual(Duration.between(rs.getObject(4, OffsetDateTime.class), now), Duration.ofDays(1), "now() - 1 day");
                }
            });
            check("an error carries its SQLSTATE and the connection goes on", () -> {
                try (Statement st = conn.createStatement()) {
                    try {
                        st.executeQuery("SELECT * FROM no_such_table_here");
                        throw new AssertionError("no error");
                    } catch (SQLException e) {
                        expectEqual(e.getSQLState(), "42P01", "SQLSTATE");
                    }
                    try (ResultSet rs = st.executeQuery("SELECT 2")) { rs.next(); expectEqual(rs.getInt(1), 2, "after"); }
                }
            });
            check("demo view through a PreparedStatement (userql's orders)", () -> {
                try (PreparedStatement ps = conn.prepareStatement("SELECT * FROM orders WHERE amount > ? LIMIT 5")) {
                    ps.setDouble(1, 1.0);
                    List<String> got = column(ps.executeQuery(), "channel");
                    if (got.isEmpty()) throw new AssertionError("no rows");
                }
            });
        }
        try (Connection conn = DriverManager.getConnection(url("&prepareThreshold=-1"))) {
            check("every column type read back (binary transfer)", () -> checkTypedRows(conn, "binary"));
        }
        System.out.println("pgjdbc: " + passed + " passed, " + failed.size() + " failed");
        System.exit(failed.isEmpty() ? 0 : 1);
    }
}
