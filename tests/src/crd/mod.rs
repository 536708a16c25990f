//! Custom resource types of the operators platformd renders for, generated from their published
//! CRD schemas, for checking rendered objects in tests.

pub mod clickhouse_installation;
pub mod kafka_connector;
pub mod prometheus_rule;
pub mod transcribed;
