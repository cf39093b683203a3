//! How numbers read in what depproxy tells people: durations in the units people use (`30d`,
//! `1h 30m`, `764ms` — never `2592000s` or `764.130452ms`), counts with their noun agreeing
//! (`1 blob`, `2 blobs`), and errors with their causes.

use std::fmt;
use std::time::Duration;

/// A duration as people write it: its two largest units (`1d 12h`, `5m 30s`, `45s`), whole
/// milliseconds under a second (`764ms`). `humantime` parses what it prints back (the
/// configuration's `30d` reads as `30d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
        let seconds = self.0.as_secs();
        if seconds == 0 {
            return write!(f, "{}ms", self.0.subsec_millis());
        }
        let mut rest = seconds;
        let mut written = 0;
        for (size, unit) in UNITS {
            let count = rest / size;
            rest %= size;
            if count > 0 {
                let separator = if written > 0 { " " } else { "" };
                write!(f, "{separator}{count}{unit}")?;
                written += 1;
            } else if written > 0 {
                // `1d 0h 5m` would mislead: the second unit is the one right below the first.
                break;
            }
            if written == 2 {
                break;
            }
        }
        Ok(())
    }
}

/// How long to wait before a retry, as `Retry-After` says it: whole seconds, rounded up (a
/// client told `retry in 1s` must not be refused for retrying after 1 s).
pub fn retry_wait(wait: Duration) -> HumanDuration {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HumanDuration(Duration::from_secs(seconds.max(1)))
}

/// `count` with its noun: `1 blob`, `0 blobs`, `3 blobs`.
pub fn plural(count: u64, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

/// An error and its sources on one line: reqwest's own message ("error sending request") hides
/// the cause further down the chain.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn human(seconds: u64) -> String {
        HumanDuration(Duration::from_secs(seconds)).to_string()
    }

    #[test]
    fn durations_read_in_the_units_people_use() {
        assert_eq!(human(30 * 86_400), "30d");
        assert_eq!(human(86_400 + 12 * 3_600 + 59), "1d 12h");
        assert_eq!(human(86_400 + 5 * 60), "1d", "no `0h`: the second unit is the one right below");
        assert_eq!(human(5 * 60 + 30), "5m 30s");
        assert_eq!(human(3_600), "1h");
        assert_eq!(human(45), "45s");
        assert_eq!(HumanDuration(Duration::from_nanos(764_130_452)).to_string(), "764ms");
        assert_eq!(HumanDuration(Duration::ZERO).to_string(), "0ms");
        for seconds in [30 * 86_400, 90 * 86_400 + 3_600, 330, 45] {
            let parsed = humantime::parse_duration(&human(seconds)).unwrap();
            assert_eq!(parsed.as_secs(), seconds, "what is printed parses back");
        }
    }

    #[test]
    fn retry_waits_are_whole_seconds_rounded_up() {
        assert_eq!(retry_wait(Duration::from_nanos(764_130_452)).to_string(), "1s");
        assert_eq!(retry_wait(Duration::from_millis(1_001)).to_string(), "2s");
        assert_eq!(retry_wait(Duration::from_secs(59)).to_string(), "59s");
        assert_eq!(retry_wait(Duration::ZERO).to_string(), "1s");
    }

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(plural(1, "blob", "blobs"), "1 blob");
        assert_eq!(plural(0, "blob", "blobs"), "0 blobs");
        assert_eq!(plural(12, "failed login", "failed logins"), "12 failed logins");
    }

    #[test]
    fn an_error_reads_with_its_causes() {
        #[derive(Debug)]
        struct Sending(std::io::Error);
        impl fmt::Display for Sending {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl std::error::Error for Sending {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        assert_eq!(error_chain(&Sending(refused)), "error sending request: connection refused");
    }
}
