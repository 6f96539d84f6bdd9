//! The machine search grammar (MAAS-style), shared by the web UI's search box and the API's `q=`:
//!
//! - `key:value` keeps machines whose `key` is `value`; `key:(a,b)` is either; `key:!x` and
//!   `key:!(a,b)` exclude. Terms are ANDed: `tag:a tag:b` needs both tags.
//! - `hostname:` takes `*` and `?` wildcards (`hostname:node*`); `arch:amd64` matches
//!   `amd64/generic` (and every other `amd64/…`); `ip:` is an address.
//! - A bare word matches the hostname, the system id or the description, in part.
//!
//! Pure: [`parse`] turns text into a [`Query`]; `db::machines` turns that into SQL.

use region_api_types::{MachineStatus, PowerState};

/// What a term filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Status,
    Hostname,
    Tag,
    Zone,
    Pool,
    Owner,
    Arch,
    Power,
    Mac,
    Ip,
    Id,
}

impl Key {
    pub const ALL: [(&'static str, Key); 11] = [
        ("status", Key::Status),
        ("hostname", Key::Hostname),
        ("tag", Key::Tag),
        ("zone", Key::Zone),
        ("pool", Key::Pool),
        ("owner", Key::Owner),
        ("arch", Key::Arch),
        ("power", Key::Power),
        ("mac", Key::Mac),
        ("ip", Key::Ip),
        ("id", Key::Id),
    ];

    fn parse(s: &str) -> Option<Key> {
        let s = s.to_ascii_lowercase();
        let s = match s.as_str() {
            "tags" => "tag",
            "architecture" => "arch",
            "system_id" => "id",
            "fqdn" => "hostname",
            other => other,
        };
        Key::ALL.iter().find(|(n, _)| *n == s).map(|(_, k)| *k)
    }
}

/// One `key:values` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub key: Key,
    /// Either of these (already normalised: statuses and MACs in canonical form).
    pub values: Vec<String>,
    /// `key:!…`: none of these.
    pub negate: bool,
}

/// A parsed search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub clauses: Vec<Clause>,
    /// Bare words, lowercased; each must match.
    pub words: Vec<String>,
}

impl Query {
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty() && self.words.is_empty()
    }
}

/// Splits on whitespace outside parentheses and quotes.
fn tokens(q: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut depth, mut quote) = (0u32, false);
    for ch in q.chars() {
        match ch {
            '"' => quote = !quote,
            '(' if !quote => {
                depth += 1;
                cur.push(ch);
            }
            ')' if !quote => {
                if depth == 0 {
                    return Err("A ')' has no '(' before it.".into());
                }
                depth -= 1;
                cur.push(ch);
            }
            c if c.is_whitespace() && depth == 0 && !quote => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if depth > 0 {
        return Err("A '(' is not closed with ')'.".into());
    }
    if quote {
        return Err("A '\"' is not closed.".into());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn normalise(key: Key, v: &str) -> Result<String, String> {
    let v = v.trim();
    match key {
        Key::Status => MachineStatus::ALL
            .iter()
            .find(|s| s.as_str() == v.to_ascii_lowercase() || s.label().eq_ignore_ascii_case(v))
            .map(|s| s.as_str().to_string())
            .ok_or_else(|| {
                format!(
                    "'{v}' is not a machine status; use one of {}.",
                    MachineStatus::ALL.map(|s| s.as_str()).join(", ")
                )
            }),
        Key::Power => {
            let l = v.to_ascii_lowercase();
            [
                PowerState::On,
                PowerState::Off,
                PowerState::Error,
                PowerState::Unknown,
            ]
            .iter()
            .find(|p| p.as_str() == l)
            .map(|p| p.as_str().to_string())
            .ok_or_else(|| format!("'{v}' is not a power state; use on, off, error or unknown."))
        }
        Key::Mac => {
            let hex: String = v.chars().filter(char::is_ascii_hexdigit).collect();
            if hex.len() != 12
                || v.chars()
                    .any(|c| !c.is_ascii_hexdigit() && c != ':' && c != '-')
            {
                return Err(format!("'{v}' is not a MAC address (aa:bb:cc:dd:ee:ff)."));
            }
            let hex = hex.to_ascii_lowercase();
            Ok((0..6)
                .map(|i| &hex[i * 2..i * 2 + 2])
                .collect::<Vec<_>>()
                .join(":"))
        }
        Key::Hostname | Key::Arch => Ok(v.to_ascii_lowercase()),
        _ => Ok(v.to_string()),
    }
}

/// Parses a search. Errors say which term is wrong and how to write it.
pub fn parse(q: &str) -> Result<Query, String> {
    let mut out = Query::default();
    for tok in tokens(q)? {
        let Some((k, rest)) = tok.split_once(':') else {
            out.words.push(tok.to_ascii_lowercase());
            continue;
        };
        let key = Key::parse(k).ok_or_else(|| {
            format!(
                "'{k}:' is not a search key; use {}, or a bare word.",
                Key::ALL
                    .iter()
                    .map(|(n, _)| format!("{n}:"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let (negate, rest) = match rest.strip_prefix('!') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let inner = match rest.strip_prefix('(') {
            Some(r) => r
                .strip_suffix(')')
                .ok_or_else(|| format!("In '{tok}', the list must end with ')'."))?,
            None => rest,
        };
        let values = inner
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| normalise(key, v))
            .collect::<Result<Vec<_>, _>>()?;
        if values.is_empty() {
            return Err(format!("'{tok}' has no value: write {k}:VALUE."));
        }
        out.clauses.push(Clause {
            key,
            values,
            negate,
        });
    }
    Ok(out)
}

/// A `*`/`?` glob as a SQL LIKE pattern (with `\` escaping LIKE's own `%` and `_`).
pub fn glob_to_like(glob: &str) -> String {
    let mut s = String::with_capacity(glob.len() + 2);
    for c in glob.chars() {
        match c {
            '*' => s.push('%'),
            '?' => s.push('_'),
            '%' | '_' | '\\' => {
                s.push('\\');
                s.push(c);
            }
            c => s.push(c),
        }
    }
    s
}

/// Sortable columns of the machine list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    Created,
    Hostname,
    Status,
    Power,
    Arch,
    Cores,
    Memory,
    Storage,
    Zone,
    Pool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sort {
    pub key: SortKey,
    pub desc: bool,
}

impl Sort {
    pub const NAMES: [(&'static str, SortKey); 10] = [
        ("created", SortKey::Created),
        ("hostname", SortKey::Hostname),
        ("status", SortKey::Status),
        ("power", SortKey::Power),
        ("arch", SortKey::Arch),
        ("cores", SortKey::Cores),
        ("memory", SortKey::Memory),
        ("storage", SortKey::Storage),
        ("zone", SortKey::Zone),
        ("pool", SortKey::Pool),
    ];

    /// `hostname` ascending, `-hostname` descending.
    pub fn parse(s: &str) -> Result<Sort, String> {
        let (desc, name) = match s.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, s),
        };
        Sort::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, key)| Sort { key: *key, desc })
            .ok_or_else(|| {
                format!(
                    "'{s}' is not a sort column; use one of {} (prefix '-' for descending).",
                    Sort::NAMES.map(|(n, _)| n).join(", ")
                )
            })
    }

    pub fn name(&self) -> String {
        let n = Sort::NAMES
            .iter()
            .find(|(_, k)| *k == self.key)
            .map(|(n, _)| *n)
            .unwrap_or("created");
        if self.desc {
            format!("-{n}")
        } else {
            n.to_string()
        }
    }
}

/// Replaces the `owner:` usernames of `q` with user ids (`none` with ""); an unknown username
/// matches no machine.
pub fn resolve_owners(conn: &mut crate::db::DbConn, mut q: Query) -> crate::error::Result<Query> {
    for c in q.clauses.iter_mut().filter(|c| c.key == Key::Owner) {
        let mut ids = Vec::with_capacity(c.values.len());
        for name in &c.values {
            if name.eq_ignore_ascii_case("none") {
                ids.push(String::new());
            } else {
                match crate::db::users::by_username(conn, name)? {
                    Some(u) => ids.push(u.id),
                    // "-" is no user id (ids are letters and digits): it matches no machine.
                    None => ids.push("-".to_string()),
                }
            }
        }
        c.values = ids;
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_lists_negations_and_words() {
        let q = parse("status:ready tag:rack-a hostname:node* owner:!(alice,bob) web").unwrap();
        assert_eq!(
            q.clauses,
            vec![
                Clause {
                    key: Key::Status,
                    values: vec!["ready".into()],
                    negate: false
                },
                Clause {
                    key: Key::Tag,
                    values: vec!["rack-a".into()],
                    negate: false
                },
                Clause {
                    key: Key::Hostname,
                    values: vec!["node*".into()],
                    negate: false
                },
                Clause {
                    key: Key::Owner,
                    values: vec!["alice".into(), "bob".into()],
                    negate: true
                },
            ]
        );
        assert_eq!(q.words, vec!["web".to_string()]);
    }

    #[test]
    fn values_are_normalised() {
        let q =
            parse("status:(Ready, failed_commissioning) mac:AA-BB-CC-DD-EE-0F power:ON").unwrap();
        assert_eq!(q.clauses[0].values, vec!["ready", "failed_commissioning"]);
        assert_eq!(q.clauses[1].values, vec!["aa:bb:cc:dd:ee:0f"]);
        assert_eq!(q.clauses[2].values, vec!["on"]);
        assert!(parse("").unwrap().is_empty());
        assert!(parse("   ").unwrap().is_empty());
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(parse("status:readyish")
            .unwrap_err()
            .contains("not a machine status"));
        assert!(parse("colour:red")
            .unwrap_err()
            .contains("not a search key"));
        assert!(parse("tag:(a,b").unwrap_err().contains("not closed"));
        assert!(parse("tag:").unwrap_err().contains("has no value"));
        assert!(parse("mac:zz").unwrap_err().contains("not a MAC"));
        assert!(parse("a)").unwrap_err().contains("no '('"));
    }

    #[test]
    fn globs_become_like_patterns() {
        assert_eq!(glob_to_like("node*"), "node%");
        assert_eq!(glob_to_like("n?de_1%"), "n_de\\_1\\%");
    }

    #[test]
    fn sort_names_round_trip() {
        for (n, _) in Sort::NAMES {
            assert_eq!(Sort::parse(n).unwrap().name(), n);
            assert_eq!(
                Sort::parse(&format!("-{n}")).unwrap().name(),
                format!("-{n}")
            );
        }
        assert!(Sort::parse("owner")
            .unwrap_err()
            .contains("not a sort column"));
    }
}
