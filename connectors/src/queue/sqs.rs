//! STUB (replaced by the real implementation).
use super::{Delivery, Depth, Queue, QueueError, QueueSettings};
use async_trait::async_trait;
use std::time::Duration;
#[derive(Debug)]
pub struct SqsQueue;
impl SqsQueue {
    pub async fn connect(u: &str, _s: QueueSettings) -> Result<Self, QueueError> {
        Err(QueueError::Permanent {
            location: u.to_owned(),
            message: "this backend is not implemented in this revision yet".to_owned(),
            hint: Some("use --queue db".to_owned()),
        })
    }
}
#[async_trait]
impl Queue for SqsQueue {
    async fn setup(&self) -> Result<(), QueueError> {
        Ok(())
    }
    async fn publish(&self, _b: &[u8]) -> Result<(), QueueError> {
        Ok(())
    }
    async fn receive(&self, _m: usize, _w: Duration) -> Result<Vec<Delivery>, QueueError> {
        Ok(vec![])
    }
    async fn ack(&self, _d: &Delivery) -> Result<(), QueueError> {
        Ok(())
    }
    async fn release(&self, _d: &Delivery) -> Result<(), QueueError> {
        Ok(())
    }
    async fn dead_letter(&self, _d: &Delivery, _r: &str) -> Result<(), QueueError> {
        Ok(())
    }
    async fn depth(&self) -> Result<Depth, QueueError> {
        Ok(Depth::default())
    }
    fn backend(&self) -> &'static str {
        "stub"
    }
}
