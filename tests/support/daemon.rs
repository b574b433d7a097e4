//! Which routing daemon a lab node runs, and the routelb flags that point at it.

/// A node's daemon, as a lab or cluster reports it.
pub enum NodeDaemon {
    Frr { pathspace: String },
    Bird { socket: String, include: String },
}

impl NodeDaemon {
    /// `--daemon ...` and the flags that locate it, for `routelb agent` and `routelb standalone`.
    #[allow(dead_code)] // agent and standalone users
    pub fn flags(&self) -> Vec<String> {
        let flags: Vec<&str> = match self {
            NodeDaemon::Frr { pathspace } => vec!["--daemon", "frr", "--frr-pathspace", pathspace],
            NodeDaemon::Bird { socket, include } => vec![
                "--daemon",
                "bird",
                "--bird-socket",
                socket,
                "--bird-include",
                include,
            ],
        };
        flags.into_iter().map(String::from).collect()
    }
}
