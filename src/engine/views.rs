//! The unified record-level views `identities`, `orders` and `events`, built from the
//! channels' column mappings as plain SQL views — so `\d+ identities` and the query plan
//! show exactly what they are, and DataFusion pushes filters down into the channel scans.

use crate::config::ChannelConfig;

/// Quote an identifier for SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quote a string literal for SQL.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn record_id_expr(ch: &ChannelConfig) -> String {
    format!(
        "{} || CAST({} AS VARCHAR)",
        quote_literal(&format!("{}:", ch.name)),
        quote_ident(&ch.record_key)
    )
}

fn source(ch: &ChannelConfig) -> String {
    format!("channels.{}", quote_ident(&ch.name))
}

/// `identities(channel, record_id, id_type, id_value)`: one row per distinct non-empty
/// identifier of a record.
pub fn identities_sql(channels: &[ChannelConfig]) -> String {
    let parts: Vec<String> = channels
        .iter()
        .flat_map(|ch| {
            ch.ids.iter().map(move |(id_type, column)| {
                format!(
                    "SELECT {} AS channel, {} AS record_id, {} AS id_type, CAST({} AS VARCHAR) AS id_value FROM {} WHERE {} IS NOT NULL",
                    quote_literal(&ch.name),
                    record_id_expr(ch),
                    quote_literal(id_type),
                    quote_ident(column),
                    source(ch),
                    quote_ident(&ch.record_key),
                )
            })
        })
        .collect();
    if parts.is_empty() {
        return "SELECT CAST(NULL AS VARCHAR) AS channel, CAST(NULL AS VARCHAR) AS record_id, \
                CAST(NULL AS VARCHAR) AS id_type, CAST(NULL AS VARCHAR) AS id_value WHERE false"
            .to_string();
    }
    format!(
        "SELECT DISTINCT channel, record_id, id_type, id_value FROM ({}) u \
         WHERE id_value IS NOT NULL AND trim(id_value) <> ''",
        parts.join(" UNION ALL ")
    )
}

/// A row-level view: for each channel with a mapping, its rows as
/// `channel, record_id, <ts_name> (timestamp), <value_name> (value_type)`.
fn rows_view_sql(
    channels: &[ChannelConfig],
    mapping: impl Fn(&ChannelConfig) -> Option<(&str, &str)>,
    ts_name: &str,
    value_name: &str,
    value_type: &str,
) -> String {
    let parts: Vec<String> = channels
        .iter()
        .filter_map(|ch| {
            let (ts, value) = mapping(ch)?;
            Some(format!(
                "SELECT {} AS channel, {} AS record_id, CAST({} AS TIMESTAMP) AS {ts_name}, CAST({} AS {value_type}) AS {value_name} FROM {} WHERE {} IS NOT NULL",
                quote_literal(&ch.name),
                record_id_expr(ch),
                quote_ident(ts),
                quote_ident(value),
                source(ch),
                quote_ident(&ch.record_key),
            ))
        })
        .collect();
    if parts.is_empty() {
        return format!(
            "SELECT CAST(NULL AS VARCHAR) AS channel, CAST(NULL AS VARCHAR) AS record_id, \
             CAST(NULL AS TIMESTAMP) AS {ts_name}, CAST(NULL AS {value_type}) AS {value_name} WHERE false"
        );
    }
    parts.join(" UNION ALL ")
}

/// `orders(channel, record_id, order_ts, amount)`.
pub fn orders_sql(channels: &[ChannelConfig]) -> String {
    rows_view_sql(
        channels,
        |ch| {
            ch.orders
                .as_ref()
                .map(|o| (o.ts.as_str(), o.amount.as_str()))
        },
        "order_ts",
        "amount",
        "DOUBLE",
    )
}

/// `events(channel, record_id, event_ts, event)`.
pub fn events_sql(channels: &[ChannelConfig]) -> String {
    rows_view_sql(
        channels,
        |ch| {
            ch.events
                .as_ref()
                .map(|e| (e.ts.as_str(), e.event.as_str()))
        },
        "event_ts",
        "event",
        "VARCHAR",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("o'k"), "'o''k'");
    }

    #[test]
    fn empty_channel_list_gives_typed_empty_views() {
        assert!(identities_sql(&[]).contains("WHERE false"));
        assert!(orders_sql(&[]).contains("order_ts"));
        assert!(events_sql(&[]).contains("event_ts"));
    }
}
