//! `routelb plan` against this host's daemon (shell): what it runs now — FRR's running
//! configuration, BIRD's configuration and routelb's include — read, then planned.

use super::Step;
use crate::daemon::{DaemonError, Driver};

/// What applying `fragment` would change in the daemon, and what each change does; changes
/// nothing.
pub async fn plan(driver: &Driver, fragment: &str) -> Result<Vec<Step>, DaemonError> {
    match driver {
        Driver::Frr(d) => Ok(super::frr::plan(&d.running_config().await?, fragment)),
        Driver::Bird(d) => {
            let mut steps = Vec::new();
            for (daemon, part) in d.daemons.iter().zip(d.parts(fragment)) {
                let (base, include) = daemon.configuration().await?;
                steps.extend(super::bird::plan(&base, &include, part));
            }
            Ok(steps)
        }
    }
}
