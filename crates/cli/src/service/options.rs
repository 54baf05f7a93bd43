//! An entry of the option table: each option defined once, as an [`Opt`] — its flag
//! (which is also its config key), the name of its value, its default, its help, how a
//! systemd unit expresses it ([`Systemd`]), and the function that parses a value into
//! its field of the group's struct.
//!
//! Everything else is derived from the table ([`super::table`]): the flags of `run` and
//! `start`, the keys of a service in `daemonic.toml` and their checks (`config::schema`),
//! and which keys a generated systemd unit says itself (`units::systemd`). Each group's
//! entries live beside its fields, as options of the group's struct: [`super::args`],
//! [`super::health`], [`super::log`], [`super::limits`], [`super::privileges`] and
//! [`super::systemd`].

use std::sync::Arc;

use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{Arg, ArgAction, ValueEnum};

/// Parses one value of an option into its field of `A` (a repeatable option adds it).
pub type Setter<A> = Arc<dyn Fn(&mut A, &str) -> Result<(), String> + Send + Sync>;

/// Options that hold nothing yet: what a [`Setter`] starts from. A field with a default
/// holds a placeholder, which the table's default replaces.
pub trait Blank {
    fn blank() -> Self;
}

/// How an option takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An on/off flag (`--backoff-jitter`; `backoff-jitter = true`).
    Switch,
    /// One value; given again, the last one counts.
    One,
    /// Repeatable: every value counts (`--env A=1 --env B=2`; an array in the file).
    Many,
}

/// How a generated systemd unit expresses an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Systemd {
    /// The unit says it in systemd's terms (this directive), also when it runs the service
    /// under `daemonic run`, which then is not given it.
    Said(&'static str),
    /// This directive when systemd runs the program itself; passed on to `daemonic run` in
    /// a unit that runs the program under daemonic.
    Direct(&'static str),
    /// Only daemonic does it: a unit that runs the program itself goes without it (its
    /// comments say so), or runs it under `daemonic run` when a value needs daemonic (a
    /// probe, a log file: `units::systemd::wrapper_reasons`).
    Daemonic,
    /// Shapes the generated unit itself (`unit-*`); `run`, `start` and `up` ignore it.
    Unit,
}

/// One option of a service, a field of `A` (the options of one group, or all of them:
/// [`ServiceArgs`](super::ServiceArgs)).
pub struct Opt<A> {
    /// The long flag without `--`, and the config key.
    pub name: &'static str,
    pub shape: Shape,
    /// What `--help` calls the value (`DURATION`); empty for a switch.
    pub value_name: &'static str,
    /// A value is a list with this separator (`--success-exit-codes 0,143`).
    pub delimiter: Option<char>,
    /// The value when none is given, as it would be written.
    pub default: Option<&'static str>,
    /// The `--help` section; `None`: "Options".
    pub heading: Option<&'static str>,
    pub help: &'static str,
    /// The values of an enumerated option, with their help.
    pub values: Option<fn() -> Vec<PossibleValue>>,
    pub systemd: Systemd,
    pub set: Setter<A>,
}

impl<A: Blank + 'static> Opt<A> {
    fn new(
        name: &'static str,
        shape: Shape,
        value_name: &'static str,
        set: impl Fn(&mut A, &str) -> Result<(), String> + Send + Sync + 'static,
    ) -> Opt<A> {
        Opt {
            name,
            shape,
            value_name,
            delimiter: None,
            default: None,
            heading: None,
            help: "",
            values: None,
            systemd: Systemd::Direct(""),
            set: Arc::new(set),
        }
    }

    pub fn switch(
        name: &'static str,
        set: impl Fn(&mut A, &str) -> Result<(), String> + Send + Sync + 'static,
    ) -> Opt<A> {
        Opt::new(name, Shape::Switch, "", set)
    }

    pub fn one(
        name: &'static str,
        value_name: &'static str,
        set: impl Fn(&mut A, &str) -> Result<(), String> + Send + Sync + 'static,
    ) -> Opt<A> {
        Opt::new(name, Shape::One, value_name, set)
    }

    pub fn many(
        name: &'static str,
        value_name: &'static str,
        set: impl Fn(&mut A, &str) -> Result<(), String> + Send + Sync + 'static,
    ) -> Opt<A> {
        Opt::new(name, Shape::Many, value_name, set)
    }

    pub fn default(self, default: &'static str) -> Opt<A> {
        Opt {
            default: Some(default),
            ..self
        }
    }

    pub fn delimiter(self, delimiter: char) -> Opt<A> {
        Opt {
            delimiter: Some(delimiter),
            ..self
        }
    }

    pub fn heading(self, heading: &'static str) -> Opt<A> {
        Opt {
            heading: Some(heading),
            ..self
        }
    }

    pub fn help(self, help: &'static str) -> Opt<A> {
        Opt { help, ..self }
    }

    /// The values of `E`, with the help of each (its doc comment).
    pub fn values<E: ValueEnum>(self) -> Opt<A> {
        Opt {
            values: Some(possible::<E>),
            ..self
        }
    }

    pub fn systemd(self, systemd: Systemd) -> Opt<A> {
        Opt { systemd, ..self }
    }

    /// The names of the allowed values of an enumerated option, else empty.
    pub fn possible(&self) -> Vec<String> {
        self.values.map_or_else(Vec::new, |values| {
            values().iter().map(|p| p.get_name().to_string()).collect()
        })
    }

    /// The single values in `text`: itself, or its parts for a list option.
    pub fn parts<'t>(&self, text: &'t str) -> Vec<&'t str> {
        match self.delimiter {
            Some(d) => text.split(d).collect(),
            None => vec![text],
        }
    }

    /// Whether `text` is a valid value (each of its parts), and why not.
    pub fn check(&self, text: &str) -> Result<(), String> {
        let mut scratch = A::blank();
        self.parts(text)
            .into_iter()
            .try_for_each(|part| (self.set)(&mut scratch, part))
    }

    /// The option as a field of `B`, which holds an `A` where `field` says.
    pub fn within<B: Blank + 'static>(self, field: fn(&mut B) -> &mut A) -> Opt<B> {
        let set = self.set;
        Opt {
            name: self.name,
            shape: self.shape,
            value_name: self.value_name,
            delimiter: self.delimiter,
            default: self.default,
            heading: self.heading,
            help: self.help,
            values: self.values,
            systemd: self.systemd,
            set: Arc::new(move |b: &mut B, v: &str| set(field(b), v)),
        }
    }

    /// The flag as `run` and `start` take it.
    pub fn arg(&'static self) -> Arg {
        let mut arg = Arg::new(self.name).long(self.name).help(self.help);
        arg = match self.shape {
            Shape::Switch => arg.action(ArgAction::SetTrue),
            Shape::One | Shape::Many => {
                let action = if self.shape == Shape::One {
                    ArgAction::Set
                } else {
                    ArgAction::Append
                };
                let arg = arg.value_name(self.value_name).action(action);
                match self.values {
                    Some(values) => arg.value_parser(PossibleValuesParser::new(values())),
                    // Checked by the option's own parser, so that clap reports a bad
                    // value with the flag's name and usage; parsed for good in
                    // `from_arg_matches`.
                    None => arg.value_parser(move |text: &str| {
                        (self.set)(&mut A::blank(), text).map(|()| text.to_string())
                    }),
                }
            }
        };
        if let Some(d) = self.delimiter {
            arg = arg.value_delimiter(d);
        }
        if let Some(d) = self.default {
            arg = arg.default_value(d);
        }
        if let Some(h) = self.heading {
            arg = arg.help_heading(h);
        }
        arg
    }
}

fn possible<E: ValueEnum>() -> Vec<PossibleValue> {
    E::value_variants()
        .iter()
        .filter_map(ValueEnum::to_possible_value)
        .collect()
}

/// A setter's `field = value`.
pub fn put<T>(field: &mut T, value: Result<T, String>) -> Result<(), String> {
    *field = value?;
    Ok(())
}

/// A setter's `field.push(value)`.
pub fn push<T>(field: &mut Vec<T>, value: Result<T, String>) -> Result<(), String> {
    field.push(value?);
    Ok(())
}

/// The value of a switch: `true` or `false`.
pub fn switch(text: &str) -> Result<bool, String> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("invalid value {text:?} (expected true or false)")),
    }
}

/// One of the values of `E`, as written in `--help`.
pub fn choice<E: ValueEnum>(text: &str) -> Result<E, String> {
    E::from_str(text, false).map_err(|_| {
        let names: Vec<String> = possible::<E>()
            .iter()
            .map(|p| p.get_name().to_string())
            .collect();
        format!(
            "invalid value {text:?} (expected one of {})",
            names.join(", ")
        )
    })
}
