//! [`Console`]: a service whose output goes to the supervisor's own stdout and stderr,
//! each line after `name | ` (`run -f`). Writing it is the capture's
//! (`supervisor::capture::console`).

use std::fmt;

/// Which of the supervisor's streams a line goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One service's stream on the supervisor's console.
#[derive(Clone, PartialEq, Eq)]
pub struct Console {
    pub(crate) name: String,
    /// The service's place in its file, for its colour.
    pub(crate) place: usize,
    pub(crate) stream: Stream,
}

impl fmt::Debug for Console {
    // Neither the width nor the place is part of it: a new, longer name elsewhere in the
    // file, or a service moved up, does not make this service "changed".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Console({}, {:?})", self.name, self.stream)
    }
}

impl Console {
    /// The stdout of the service `name`, at `place` in its file (its stderr:
    /// [`Console::stderr`]).
    pub fn new(name: &str, place: usize) -> Console {
        Console {
            name: name.to_string(),
            place,
            stream: Stream::Stdout,
        }
    }

    pub fn stderr(&self) -> Console {
        Console {
            stream: Stream::Stderr,
            ..self.clone()
        }
    }
}
