//! [`Def`]: one service as the file defines it — its options built from the file's
//! values, and the same options as flags for the units that run `daemonic run`.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::Condition;
use crate::service::options::Shape;
use crate::service::{Service, ServiceArgs, table};

/// One service as the file defines it.
#[derive(Debug, Clone)]
pub struct Def {
    pub name: String,
    /// Its options, built from the file's values (with `command` as its command).
    pub args: ServiceArgs,
    /// The same options as flags of `run` (`--key=value`, `--switch`), in a fixed order:
    /// for a unit or a Windows service that runs `daemonic run` with them.
    pub flags: Vec<String>,
    /// The program and its arguments.
    pub command: Vec<String>,
    pub depends_on: Vec<String>,
    /// What it waits for of each of `depends_on` (same order).
    pub conditions: Vec<Condition>,
}

impl Def {
    /// The service `name` with the options `values` (each key's checked texts, in this
    /// order; a key may come twice, its texts then add up), running `command`. The error
    /// names the key whose value its parser refused.
    pub fn new(
        name: String,
        values: &[(String, Vec<String>)],
        command: Vec<String>,
        depends_on: Vec<(String, Condition)>,
    ) -> Result<Def, String> {
        let mut args = ServiceArgs::from_values(|key| {
            values
                .iter()
                .filter(|(k, _)| k == key)
                .flat_map(|(_, texts)| texts.iter().map(String::as_str))
                .collect()
        })?;
        args.command = command.iter().map(Into::into).collect();
        let flags = values
            .iter()
            .flat_map(|(key, texts)| texts.iter().filter_map(move |t| flag(key, t)))
            .collect();
        let (depends_on, conditions) = depends_on.into_iter().unzip();
        Ok(Def {
            name,
            args,
            flags,
            command,
            depends_on,
            conditions,
        })
    }

    /// The service to supervise; its output is captured to `default_log` unless its
    /// `log-file` says where (see [`Service::from_args`]).
    pub fn service(&self, default_log: Option<PathBuf>) -> Result<Service> {
        Service::from_args(self.name.clone(), self.args.clone(), default_log)
            .with_context(|| self.name.clone())
    }
}

/// `--key=text` (one word, so a value starting with `-` stays a value); a switch is
/// `--key` when on, nothing when off.
fn flag(key: &str, text: &str) -> Option<String> {
    let switch = table::find(key).is_some_and(|o| o.shape == Shape::Switch);
    match (switch, text) {
        (true, "true") => Some(format!("--{key}")),
        (true, _) => None,
        (false, _) => Some(format!("--{key}={text}")),
    }
}
