//! Go-style flag spelling, normalised for clap.
//!
//! The `consul` CLI parses flags with Go's `flag` package: `-name` and `--name` are the same
//! flag, a value follows as `-name=value` or `-name value`, booleans take only `-name` or
//! `-name=false`, and parsing **stops at the first argument that is not a flag** (or after
//! `--`): `consul kv get foo -recurse` has two positional arguments. clap knows none of this,
//! so [`normalise`] rewrites the arguments of one subcommand before clap sees them: every known
//! flag becomes `--name=value`, then comes `--`, then the positional arguments untouched.
//! Unknown flags and malformed values are refused here with Go's own messages.

use std::fmt;

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `-name`, `-name=true|false`.
    Bool,
    /// `-name=value` or `-name value`, any string.
    Str,
    /// Like [`Kind::Str`], checked to be an unsigned 64-bit integer.
    Uint,
    /// Like [`Kind::Str`], checked to be a signed integer.
    Int,
}

/// One flag a subcommand accepts.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// The name without dashes.
    pub name: &'static str,
    /// Its kind.
    pub kind: Kind,
}

const fn f(name: &'static str, kind: Kind) -> Flag {
    Flag { name, kind }
}

/// The HTTP flags every command takes (Go's client and server flag sets).
pub const HTTP_FLAGS: &[Flag] = &[
    f("http-addr", Kind::Str),
    f("token", Kind::Str),
    f("token-file", Kind::Str),
    f("ca-file", Kind::Str),
    f("ca-path", Kind::Str),
    f("client-cert", Kind::Str),
    f("client-key", Kind::Str),
    f("tls-server-name", Kind::Str),
    f("datacenter", Kind::Str),
    f("stale", Kind::Bool),
];

/// The multi-tenancy flags of the kv subcommands.
pub const TENANCY_FLAGS: &[Flag] = &[f("namespace", Kind::Str), f("partition", Kind::Str)];

/// Why the arguments were refused, worded as Go's `flag` package words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagError {
    /// `flag provided but not defined: -x`.
    Undefined(String),
    /// `bad flag syntax: ---x`.
    BadSyntax(String),
    /// `flag needs an argument: -x`.
    NeedsArgument(String),
    /// `invalid boolean value "v" for -x: parse error`.
    InvalidBool {
        /// The flag.
        name: String,
        /// What was given.
        value: String,
    },
    /// `invalid value "v" for flag -x: parse error`.
    InvalidValue {
        /// The flag.
        name: String,
        /// What was given.
        value: String,
    },
    /// `-h` / `-help`: the caller prints help.
    Help,
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Undefined(n) => write!(f, "flag provided but not defined: -{n}"),
            Self::BadSyntax(a) => write!(f, "bad flag syntax: {a}"),
            Self::NeedsArgument(n) => write!(f, "flag needs an argument: -{n}"),
            Self::InvalidBool { name, value } => {
                write!(
                    f,
                    "invalid boolean value {value:?} for -{name}: parse error"
                )
            }
            Self::InvalidValue { name, value } => {
                write!(f, "invalid value {value:?} for flag -{name}: parse error")
            }
            Self::Help => f.write_str("help requested"),
        }
    }
}

impl std::error::Error for FlagError {}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)`: decimal, `0x`, `0o`, `0b`, a leading `0` for octal and
/// `_` separators after a base prefix.
pub fn parse_go_uint(s: &str) -> Option<u64> {
    let (digits, radix) = if let Some(r) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (r, 16)
    } else if let Some(r) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
        (r, 2)
    } else if let Some(r) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        (r, 8)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || digits.starts_with('+') || digits.starts_with('-') {
        return None;
    }
    let cleaned: String = if radix != 10 || s.starts_with('0') {
        if digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
            return None;
        }
        digits.chars().filter(|c| *c != '_').collect()
    } else {
        digits.to_owned()
    };
    u64::from_str_radix(&cleaned, radix).ok()
}

fn parse_go_int(s: &str) -> Option<i64> {
    if let Some(rest) = s.strip_prefix('-') {
        let v = parse_go_uint(rest)?;
        0i64.checked_sub_unsigned(v)
    } else {
        let rest = s.strip_prefix('+').unwrap_or(s);
        i64::try_from(parse_go_uint(rest)?).ok()
    }
}

/// Rewrites `args` (the arguments after the subcommand name) the way Go's `flag` package would
/// read them with `flags`: known flags become `--name=value`, followed by `--` and the
/// positional arguments.
///
/// # Errors
/// A [`FlagError`] with Go's message for an unknown flag, a missing value or a malformed
/// boolean or number; [`FlagError::Help`] for `-h`, `-help` and `--help`.
pub fn normalise(args: &[String], flags: &[Flag]) -> Result<Vec<String>, FlagError> {
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg.len() < 2 || !arg.starts_with('-') {
            break;
        }
        let mut num_minuses = 1;
        if arg.as_bytes()[1] == b'-' {
            num_minuses = 2;
            if arg.len() == 2 {
                // "--" ends the flags and is consumed.
                i += 1;
                break;
            }
        }
        let name_and_value = &arg[num_minuses..];
        if name_and_value.starts_with('-') || name_and_value.starts_with('=') {
            return Err(FlagError::BadSyntax(arg.clone()));
        }
        let (name, value) = match name_and_value.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (name_and_value, None),
        };
        let Some(flag) = flags.iter().find(|f| f.name == name) else {
            if name == "h" || name == "help" {
                return Err(FlagError::Help);
            }
            return Err(FlagError::Undefined(name.to_owned()));
        };
        i += 1;
        let value = match flag.kind {
            Kind::Bool => {
                let v = match value {
                    None => true,
                    Some(v) => parse_go_bool(v).ok_or_else(|| FlagError::InvalidBool {
                        name: name.to_owned(),
                        value: v.to_owned(),
                    })?,
                };
                v.to_string()
            }
            Kind::Str | Kind::Uint | Kind::Int => {
                let v = match value {
                    Some(v) => v.to_owned(),
                    None => {
                        let Some(next) = args.get(i) else {
                            return Err(FlagError::NeedsArgument(name.to_owned()));
                        };
                        i += 1;
                        next.clone()
                    }
                };
                let bad = || FlagError::InvalidValue {
                    name: name.to_owned(),
                    value: v.clone(),
                };
                match flag.kind {
                    Kind::Uint => parse_go_uint(&v).ok_or_else(bad)?.to_string(),
                    Kind::Int => parse_go_int(&v).ok_or_else(bad)?.to_string(),
                    _ => v.clone(),
                }
            }
        };
        out.push(format!("--{name}={value}"));
    }
    out.push("--".to_owned());
    out.extend(args[i..].iter().cloned());
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FLAGS: &[Flag] = &[
        f("recurse", Kind::Bool),
        f("modify-index", Kind::Uint),
        f("token", Kind::Str),
        f("n", Kind::Int),
    ];

    fn norm(args: &[&str]) -> Result<Vec<String>, FlagError> {
        let v: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        normalise(&v, FLAGS)
    }

    #[test]
    fn single_and_double_dash_are_the_same_flag() {
        assert_eq!(
            norm(&["-recurse", "--modify-index=5", "k"]).unwrap(),
            ["--recurse=true", "--modify-index=5", "--", "k"]
        );
        assert_eq!(
            norm(&["--recurse=false", "-token", "-secret-", "k"]).unwrap(),
            ["--recurse=false", "--token=-secret-", "--", "k"]
        );
    }

    #[test]
    fn flags_stop_at_the_first_positional_and_after_double_dash() {
        assert_eq!(norm(&["k", "-recurse"]).unwrap(), ["--", "k", "-recurse"]);
        assert_eq!(norm(&["--", "-recurse"]).unwrap(), ["--", "-recurse"]);
        assert_eq!(norm(&["-", "x"]).unwrap(), ["--", "-", "x"]);
    }

    #[test]
    fn go_messages_for_bad_flags() {
        assert_eq!(
            norm(&["-nope"]).unwrap_err().to_string(),
            "flag provided but not defined: -nope"
        );
        assert_eq!(
            norm(&["-token"]).unwrap_err().to_string(),
            "flag needs an argument: -token"
        );
        assert_eq!(
            norm(&["-recurse=yes"]).unwrap_err().to_string(),
            "invalid boolean value \"yes\" for -recurse: parse error"
        );
        assert_eq!(
            norm(&["-modify-index=-1"]).unwrap_err().to_string(),
            "invalid value \"-1\" for flag -modify-index: parse error"
        );
        assert_eq!(
            norm(&["---x"]).unwrap_err().to_string(),
            "bad flag syntax: ---x"
        );
        assert_eq!(norm(&["-help"]).unwrap_err(), FlagError::Help);
    }

    #[test]
    fn go_number_syntax() {
        assert_eq!(parse_go_uint("0x10"), Some(16));
        assert_eq!(parse_go_uint("010"), Some(8));
        assert_eq!(parse_go_uint("1_000"), None);
        assert_eq!(parse_go_uint("0x1_0"), Some(16));
        assert_eq!(parse_go_uint(""), None);
        assert_eq!(parse_go_int("-3"), Some(-3));
        assert_eq!(norm(&["-n", "-2"]).unwrap(), ["--n=-2", "--"]);
    }
}
