pub mod endpoints;
pub mod membership;
pub mod status;
