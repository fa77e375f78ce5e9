//! Output files (docs/patterns.md §6): which detections go into which file, the file's name and
//! its bytes are decided in the database first; the object is written after, and a file found
//! unwritten after a crash is written again with the same key and the same bytes.

use chrono::{FixedOffset, Offset, TimeZone, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use txp_core::detection::excel_safe;
use txp_core::output::OUTPUT_COLUMNS;
use txp_entity::{detection, output_file};

/// Detections per full file.
pub const FILE_ROWS: u64 = 50;

/// India Standard Time, UTC+05:30, the brief's time zone for output columns.
fn ist() -> FixedOffset {
    // 5 h 30 min is a valid offset: the fallback is never taken.
    FixedOffset::east_opt(5 * 3600 + 30 * 60).unwrap_or(Utc.fix())
}

/// A time as `YYYY-MM-DD HH:MM:SS` in IST.
pub fn ist_text(ms: i64) -> String {
    ist()
        .timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// A file's folder name: `pattern_detected_<YYYYMMDDTHHMMSS>_<n>.csv`, the time in IST.
pub fn file_name(created_at_ms: i64, id: i64) -> String {
    let stamp = ist()
        .timestamp_millis_opt(created_at_ms)
        .single()
        .map(|t| t.format("%Y%m%dT%H%M%S").to_string())
        .unwrap_or_default();
    format!("pattern_detected_{stamp}_{id}.csv")
}

/// A file's bytes: a UTF-8 byte-order mark (so that Excel reads names as UTF-8), the header,
/// then one row per detection, CRLF line ends, names neutralised against CSV injection.
pub fn file_bytes(y_start_ms: i64, rows: &[detection::Model]) -> Vec<u8> {
    let mut out = b"\xEF\xBB\xBF".to_vec();
    let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(&mut out);
    let y_start = ist_text(y_start_ms);
    let mut write = || -> csv::Result<()> {
        writer.write_record(OUTPUT_COLUMNS)?;
        for d in rows {
            let action = txp_core::Pattern::from_id(&d.pattern).map(|p| p.action_type()).unwrap_or_default();
            writer.write_record([
                y_start.as_str(),
                &ist_text(d.detected_at_ms),
                d.pattern.as_str(),
                action,
                &excel_safe(&d.customer),
                &excel_safe(&d.merchant),
            ])?;
        }
        writer.flush()?;
        Ok(())
    };
    // Writing into memory cannot fail.
    let _ = write();
    drop(writer);
    out
}

/// Detections of a shard not yet in a file.
pub async fn pending<C: ConnectionTrait>(db: &C, stream: &str, shard: i32) -> Result<u64, DbErr> {
    detection::Entity::find()
        .filter(detection::Column::Stream.eq(stream))
        .filter(detection::Column::Shard.eq(shard))
        .filter(detection::Column::FileId.is_null())
        .count(db)
        .await
}

/// The oldest pending detection's time, if any.
pub async fn oldest_pending_ms<C: ConnectionTrait>(
    db: &C,
    stream: &str,
    shard: i32,
) -> Result<Option<i64>, DbErr> {
    Ok(detection::Entity::find()
        .filter(detection::Column::Stream.eq(stream))
        .filter(detection::Column::Shard.eq(shard))
        .filter(detection::Column::FileId.is_null())
        .order_by_asc(detection::Column::DetectedAtMs)
        .one(db)
        .await?
        .map(|d| d.detected_at_ms))
}

/// Puts up to `FILE_ROWS` pending detections (oldest chunk first, then by key) into a new file;
/// returns its id, or `None` when nothing is pending. Call inside a transaction.
/// `DbErr::RecordNotUpdated` when another detector put one of them in a file meanwhile.
pub async fn allocate_file<C: ConnectionTrait>(
    db: &C,
    stream: &str,
    shard: i32,
    now_ms: i64,
) -> Result<Option<i64>, DbErr> {
    let rows = detection::Entity::find()
        .filter(detection::Column::Stream.eq(stream))
        .filter(detection::Column::Shard.eq(shard))
        .filter(detection::Column::FileId.is_null())
        .order_by_asc(detection::Column::ChunkIndex)
        .order_by_asc(detection::Column::Pattern)
        .order_by_asc(detection::Column::Customer)
        .order_by_asc(detection::Column::Merchant)
        .limit(FILE_ROWS)
        .all(db)
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let file = output_file::ActiveModel {
        stream: Set(stream.to_owned()),
        shard: Set(shard),
        name: Set(String::new()),
        rows: Set(i32::try_from(rows.len()).unwrap_or(i32::MAX)),
        created_at_ms: Set(now_ms),
        written_at_ms: Set(None),
        ..Default::default()
    };
    let id = output_file::Entity::insert(file).exec(db).await?.last_insert_id;
    output_file::ActiveModel { id: Set(id), name: Set(file_name(now_ms, id)), ..Default::default() }
        .update(db)
        .await?;
    for (row, d) in rows.into_iter().enumerate() {
        // Only if no other file took it since it was read: two detectors of one shard (a
        // standby that took over while the old one still runs, after a database restart cut
        // the old one's lock) must never put a detection in two files. The caller's transaction
        // then rolls back, and nothing of this file is kept.
        let updated = detection::Entity::update_many()
            .col_expr(detection::Column::FileId, Expr::value(id))
            .col_expr(detection::Column::FileRow, Expr::value(i32::try_from(row).unwrap_or(i32::MAX)))
            .filter(detection::Column::Stream.eq(&d.stream))
            .filter(detection::Column::Pattern.eq(&d.pattern))
            .filter(detection::Column::Customer.eq(&d.customer))
            .filter(detection::Column::Merchant.eq(&d.merchant))
            .filter(detection::Column::FileId.is_null())
            .exec(db)
            .await?;
        if updated.rows_affected != 1 {
            return Err(DbErr::RecordNotUpdated);
        }
    }
    Ok(Some(id))
}

/// Files decided and not yet written, oldest first.
pub async fn unwritten<C: ConnectionTrait>(
    db: &C,
    stream: &str,
    shard: i32,
) -> Result<Vec<output_file::Model>, DbErr> {
    output_file::Entity::find()
        .filter(output_file::Column::Stream.eq(stream))
        .filter(output_file::Column::Shard.eq(shard))
        .filter(output_file::Column::WrittenAtMs.is_null())
        .order_by_asc(output_file::Column::Id)
        .all(db)
        .await
}

/// A file's detections, in file order.
pub async fn file_rows<C: ConnectionTrait>(db: &C, file_id: i64) -> Result<Vec<detection::Model>, DbErr> {
    detection::Entity::find()
        .filter(detection::Column::FileId.eq(file_id))
        .order_by_asc(detection::Column::FileRow)
        .all(db)
        .await
}

/// Marks a file written.
pub async fn mark_written<C: ConnectionTrait>(db: &C, file_id: i64, now_ms: i64) -> Result<(), DbErr> {
    output_file::ActiveModel { id: Set(file_id), written_at_ms: Set(Some(now_ms)), ..Default::default() }
        .update(db)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_times_are_ist() {
        // 2026-11-30 11:04:23 UTC is 16:34:23 IST.
        let ms = 1_796_036_663_000;
        assert_eq!(ist_text(ms), "2026-11-30 16:34:23");
        assert_eq!(file_name(ms, 12), "pattern_detected_20261130T163423_12.csv");
        assert!(txp_core::output::is_output_folder(&file_name(ms, 12)));
    }

    #[test]
    fn bytes_are_excel_friendly_and_safe() {
        let d = |pattern: &str, customer: &str, merchant: &str| detection::Model {
            stream: "s".into(),
            pattern: pattern.into(),
            customer: customer.into(),
            merchant: merchant.into(),
            shard: 0,
            chunk_index: 0,
            detected_at_ms: 1_796_036_664_000,
            file_id: Some(1),
            file_row: Some(0),
            figures: None,
        };
        let bytes = file_bytes(1_796_036_663_000, &[d("PatId2", "=C1", "M1"), d("PatId3", "", "M,2")]);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text,
            "\u{feff}YStartTime(IST),detectionTime(IST),patternId,ActionType,customerName,MerchantId\r\n\
             2026-11-30 16:34:23,2026-11-30 16:34:24,PatId2,CHILD,'=C1,M1\r\n\
             2026-11-30 16:34:23,2026-11-30 16:34:24,PatId3,DEI-NEEDED,,\"M,2\"\r\n"
        );
        let mut keys = txp_core::output::OutputKeys::default();
        keys.add_part("f", &bytes).unwrap();
        assert_eq!(keys.keys.len(), 2);
        assert!(keys.problems.is_empty());
    }
}
