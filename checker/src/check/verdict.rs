//! The three-way verdict every checker returns, and how verdicts combine.

use serde::{Deserialize, Serialize};

/// What a checker concluded. Invalid beats unknown beats valid when verdicts are combined
/// (as in Jepsen's `compose` and Porcupine's `Ok | Illegal | Unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The property holds for the whole history.
    Valid,
    /// The property is violated; a counterexample says where.
    Invalid,
    /// The checker could not decide (it ran out of its time or memory budget, or the history
    /// held operations its model does not understand).
    Unknown,
}

impl Verdict {
    /// Combine two verdicts: invalid if either is invalid, else unknown if either is unknown,
    /// else valid.
    #[must_use]
    pub fn compose(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Verdict::Invalid, _) | (_, Verdict::Invalid) => Verdict::Invalid,
            (Verdict::Unknown, _) | (_, Verdict::Unknown) => Verdict::Unknown,
            _ => Verdict::Valid,
        }
    }

    /// Combine any number of verdicts; no verdicts at all is valid.
    pub fn compose_all(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
        verdicts.into_iter().fold(Verdict::Valid, Verdict::compose)
    }

    /// The verdict as it is spelled in reports: `valid`, `invalid`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Verdict::{self, *};

    #[test]
    fn invalid_beats_unknown_beats_valid() {
        let all = [Valid, Invalid, Unknown];
        for a in all {
            for b in all {
                let want = if a == Invalid || b == Invalid {
                    Invalid
                } else if a == Unknown || b == Unknown {
                    Unknown
                } else {
                    Valid
                };
                assert_eq!(a.compose(b), want, "{a} + {b}");
                assert_eq!(a.compose(b), b.compose(a));
            }
        }
        assert_eq!(Verdict::compose_all([]), Valid);
        assert_eq!(Verdict::compose_all([Valid, Unknown, Valid]), Unknown);
        assert_eq!(serde_json::to_string(&Invalid).unwrap(), "\"invalid\"");
    }
}
