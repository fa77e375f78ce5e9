//! The embedded queue: a table in the pipeline's database (PostgreSQL or SQLite), with the same
//! semantics as the brokers. A receive leases rows by pushing `visible_at_ms` forward (on
//! PostgreSQL under `FOR UPDATE SKIP LOCKED`, so concurrent consumers never take the same row);
//! a row received `delivery_limit` times and still not acked moves to the dead-letter queue at
//! its next receive, as SQS's redrive does. Handles carry the receive count, so an ack or release
//! of a lease that has since expired and been taken by another consumer changes nothing.

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set, TransactionTrait,
};
use txp_entity::queue_message::{ActiveModel, Column, Entity as QueueMessage};

use super::{DeadLetter, Delivery, Depth, Queue, QueueError, QueueSettings};
use crate::database::now_ms;

/// How often an empty receive looks again while it waits.
const POLL: Duration = Duration::from_millis(100);

/// The queue kept in the database.
#[derive(Debug, Clone)]
pub struct DbQueue {
    db: DatabaseConnection,
    settings: QueueSettings,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl DbQueue {
    pub fn new(db: DatabaseConnection, settings: QueueSettings) -> Self {
        Self { db, settings }
    }

    fn error(&self, e: &DbErr) -> QueueError {
        // Connection problems (a cut, a restart) are worth a retry; anything else is a bug or a
        // schema problem.
        let message = e.to_string();
        let location = format!("embedded queue {}", self.settings.name);
        // Lock contention (SQLite's busy writer, PostgreSQL's deadlock victim) passes too.
        let contention = ["database is locked", "deadlock detected", "could not serialize"]
            .iter()
            .any(|m| message.contains(m));
        match e {
            _ if crate::database::is_transient(e) => QueueError::Transient { location, message },
            _ if contention => QueueError::Transient { location, message },
            _ => QueueError::Permanent {
                location,
                message,
                hint: Some("run `txp migrate` against the same database".to_owned()),
            },
        }
    }

    /// Parses a handle `ID:RECEIVE_COUNT`.
    fn handle(&self, delivery: &Delivery) -> Result<(i64, i32), QueueError> {
        delivery
            .handle
            .split_once(':')
            .and_then(|(id, count)| Some((id.parse().ok()?, count.parse().ok()?)))
            .ok_or_else(|| QueueError::Permanent {
                location: format!("embedded queue {}", self.settings.name),
                message: format!("`{}` is not a delivery handle of this queue", delivery.handle),
                hint: None,
            })
    }

    /// Up to `max` visible rows of `queue`, oldest first, locked for this transaction on
    /// PostgreSQL (rows another receiver holds are skipped).
    async fn visible_rows(
        txn: &DatabaseTransaction,
        queue: &str,
        now: i64,
        max: usize,
    ) -> Result<Vec<txp_entity::queue_message::Model>, DbErr> {
        let mut select = QueueMessage::find()
            .filter(Column::Queue.eq(queue))
            .filter(Column::VisibleAtMs.lte(now))
            .order_by_asc(Column::Id)
            .limit(u64::try_from(max).unwrap_or(u64::MAX));
        if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        select.all(txn).await
    }

    /// One attempt at leasing up to `max` messages.
    async fn lease(&self, max: usize) -> Result<Vec<Delivery>, DbErr> {
        let txn = self.db.begin().await?;
        let now = now_ms();
        let rows = Self::visible_rows(&txn, &self.settings.name, now, max).await?;
        let mut leased = Vec::with_capacity(rows.len());
        let limit = i32::try_from(self.settings.delivery_limit).unwrap_or(i32::MAX);
        for row in rows {
            let (id, count, body) = (row.id, row.receive_count, row.body.clone());
            let mut active: ActiveModel = row.into();
            if count >= limit {
                active.queue = Set(self.settings.dlq_name());
                active.dead_reason = Set(Some(format!("delivery limit {limit} reached")));
                active.dead_from = Set(Some(self.settings.name.clone()));
                active.visible_at_ms = Set(now);
                active.update(&txn).await?;
                continue;
            }
            active.receive_count = Set(count + 1);
            active.visible_at_ms = Set(now.saturating_add(millis(self.settings.visibility_timeout)));
            active.update(&txn).await?;
            leased.push(Delivery {
                body: body.into_bytes(),
                attempt: u32::try_from(count + 1).unwrap_or(u32::MAX),
                handle: format!("{id}:{}", count + 1),
            });
        }
        txn.commit().await?;
        Ok(leased)
    }

    /// Leases up to `max` dead letters: their `visible_at_ms` moves one visibility timeout on,
    /// and the handle carries it, so that only this lease can ack or release them.
    async fn lease_dead(&self, max: usize) -> Result<Vec<DeadLetter>, DbErr> {
        let txn = self.db.begin().await?;
        let now = now_ms();
        let until = now.saturating_add(millis(self.settings.visibility_timeout));
        let rows = Self::visible_rows(&txn, &self.settings.dlq_name(), now, max).await?;
        let mut leased = Vec::with_capacity(rows.len());
        for row in rows {
            let dead = DeadLetter {
                delivery: Delivery {
                    body: row.body.clone().into_bytes(),
                    attempt: u32::try_from(row.receive_count).unwrap_or(0),
                    handle: format!("{}:{until}", row.id),
                },
                reason: row.dead_reason.clone().unwrap_or_else(|| "no reason recorded".to_owned()),
                attempts: u32::try_from(row.receive_count).unwrap_or(0),
            };
            let mut active: ActiveModel = row.into();
            active.visible_at_ms = Set(until);
            active.update(&txn).await?;
            leased.push(dead);
        }
        txn.commit().await?;
        Ok(leased)
    }

    /// The dead-letter rows a dead-letter handle `ID:LEASED_UNTIL` still leases.
    fn dead_lease(&self, dead: &DeadLetter) -> Result<sea_orm::Select<QueueMessage>, QueueError> {
        let (id, until): (i64, i64) = dead
            .delivery
            .handle
            .split_once(':')
            .and_then(|(id, until)| Some((id.parse().ok()?, until.parse().ok()?)))
            .ok_or_else(|| QueueError::Permanent {
                location: format!("embedded queue {}", self.settings.dlq_name()),
                message: format!("`{}` is not a dead-letter handle of this queue", dead.delivery.handle),
                hint: None,
            })?;
        Ok(QueueMessage::find()
            .filter(Column::Id.eq(id))
            .filter(Column::Queue.eq(self.settings.dlq_name()))
            .filter(Column::VisibleAtMs.eq(until)))
    }

    /// Updates the row of a current lease; false when the lease is no longer this delivery's.
    async fn update_lease(
        &self,
        delivery: &Delivery,
        set: impl FnOnce(&mut ActiveModel),
    ) -> Result<bool, QueueError> {
        let (id, count) = self.handle(delivery)?;
        let row = QueueMessage::find_by_id(id)
            .filter(Column::Queue.eq(&self.settings.name))
            .filter(Column::ReceiveCount.eq(count))
            .one(&self.db)
            .await
            .map_err(|e| self.error(&e))?;
        let Some(row) = row else { return Ok(false) };
        let mut active: ActiveModel = row.into();
        set(&mut active);
        active.update(&self.db).await.map_err(|e| self.error(&e))?;
        Ok(true)
    }
}

#[async_trait]
impl Queue for DbQueue {
    async fn setup(&self) -> Result<(), QueueError> {
        // The table comes with the migrations; this checks that it is there.
        QueueMessage::find().limit(1).all(&self.db).await.map_err(|e| self.error(&e))?;
        Ok(())
    }

    async fn publish(&self, body: &[u8]) -> Result<(), QueueError> {
        let body = String::from_utf8(body.to_vec()).map_err(|_| QueueError::Permanent {
            location: format!("embedded queue {}", self.settings.name),
            message: "message bodies must be UTF-8 text".to_owned(),
            hint: None,
        })?;
        let now = now_ms();
        let row = ActiveModel {
            queue: Set(self.settings.name.clone()),
            body: Set(body),
            enqueued_at_ms: Set(now),
            visible_at_ms: Set(now),
            receive_count: Set(0),
            dead_reason: Set(None),
            dead_from: Set(None),
            ..Default::default()
        };
        // The insert is committed when it returns: that is the confirm.
        QueueMessage::insert(row).exec(&self.db).await.map_err(|e| self.error(&e))?;
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let leased = self.lease(max.max(1)).await.map_err(|e| self.error(&e))?;
            if !leased.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(leased);
            }
            tokio::time::sleep(POLL.min(deadline - tokio::time::Instant::now())).await;
        }
    }

    fn ack_in_commit(&self, delivery: &Delivery) -> Option<sea_orm::Statement> {
        // A handle that does not parse is acked (and refused) the usual way.
        let (id, count) = self.handle(delivery).ok()?;
        Some(
            QueueMessage::delete_many()
                .filter(Column::Id.eq(id))
                .filter(Column::Queue.eq(&self.settings.name))
                .filter(Column::ReceiveCount.eq(count))
                .build(self.db.get_database_backend()),
        )
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let (id, count) = self.handle(delivery)?;
        let deleted = QueueMessage::delete_many()
            .filter(Column::Id.eq(id))
            .filter(Column::Queue.eq(&self.settings.name))
            .filter(Column::ReceiveCount.eq(count))
            .exec(&self.db)
            .await
            .map_err(|e| self.error(&e))?;
        if deleted.rows_affected == 0 {
            tracing::warn!(queue = %self.settings.name, id, "ack of an expired lease: the message was redelivered");
        }
        Ok(())
    }

    async fn release(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let now = now_ms();
        self.update_lease(delivery, |row| row.visible_at_ms = Set(now)).await?;
        Ok(())
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError> {
        let (now, dlq, from) = (now_ms(), self.settings.dlq_name(), self.settings.name.clone());
        self.update_lease(delivery, |row| {
            row.queue = Set(dlq);
            row.dead_reason = Set(Some(reason.to_owned()));
            row.dead_from = Set(Some(from));
            row.visible_at_ms = Set(now);
        })
        .await?;
        Ok(())
    }

    async fn depth(&self) -> Result<Depth, QueueError> {
        let now = now_ms();
        let count = |queue: String, visible: Option<bool>| {
            let mut select = QueueMessage::find().filter(Column::Queue.eq(queue));
            select = match visible {
                Some(true) => select.filter(Column::VisibleAtMs.lte(now)),
                Some(false) => select.filter(Column::VisibleAtMs.gt(now)),
                None => select,
            };
            select.count(&self.db)
        };
        let ready = count(self.settings.name.clone(), Some(true)).await.map_err(|e| self.error(&e))?;
        let in_flight = count(self.settings.name.clone(), Some(false)).await.map_err(|e| self.error(&e))?;
        let dead = count(self.settings.dlq_name(), None).await.map_err(|e| self.error(&e))?;
        Ok(Depth { ready, in_flight, dead })
    }

    async fn extend_lease(&self, delivery: &Delivery, by: Duration) -> Result<(), QueueError> {
        let until = now_ms().saturating_add(millis(by));
        if !self.update_lease(delivery, |row| row.visible_at_ms = Set(until)).await? {
            tracing::warn!(queue = %self.settings.name, handle = %delivery.handle, "lease lost before it could be extended");
        }
        Ok(())
    }

    async fn receive_dead(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        self.lease_dead(max.max(1)).await.map_err(|e| self.error(&e))
    }

    async fn ack_dead(&self, dead: &DeadLetter) -> Result<(), QueueError> {
        let Some(row) = self.dead_lease(dead)?.one(&self.db).await.map_err(|e| self.error(&e))? else {
            return Ok(());
        };
        QueueMessage::delete_by_id(row.id).exec(&self.db).await.map_err(|e| self.error(&e))?;
        Ok(())
    }

    async fn release_dead(&self, dead: &DeadLetter) -> Result<(), QueueError> {
        let Some(row) = self.dead_lease(dead)?.one(&self.db).await.map_err(|e| self.error(&e))? else {
            return Ok(());
        };
        let mut active: ActiveModel = row.into();
        active.visible_at_ms = Set(now_ms());
        active.update(&self.db).await.map_err(|e| self.error(&e))?;
        Ok(())
    }

    fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    fn backend(&self) -> &'static str {
        "db"
    }
}
