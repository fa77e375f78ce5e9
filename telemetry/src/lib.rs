//! What a txpatterns process tells its operators: every Prometheus metric defined once
//! ([`catalogue`]), the events that update them ([`events`]), and the HTTP endpoint that serves
//! `/metrics`, `/healthz` and `/readyz` ([`endpoint`]). Nothing here reads settings: the binary
//! decides the address and builds the readiness check.

pub mod catalogue;
pub mod endpoint;
pub mod events;
