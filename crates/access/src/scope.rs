//! Scopes of the token spec: `repository:<name>:<action>[,<action>…]`, requested by clients at the
//! token endpoint (repeated, or space-separated in one parameter), at most [`MAX_SCOPES`] in one
//! request: each granted scope is carried in the token, and a token must stay small (see
//! [`crate::MAX_JWT_LENGTH`]).

/// Scopes one token request may name (docker, podman and containerd name one or two).
pub const MAX_SCOPES: usize = 32;

/// A token request named more than [`MAX_SCOPES`] scopes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a token request may name at most {MAX_SCOPES} scopes; ask for the others in another request")]
pub struct TooManyScopes;

/// One requested scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub resource_type: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Scope {
    /// Parses one scope; `None` for anything that is not `type:name:actions`.
    pub fn parse(text: &str) -> Option<Scope> {
        let (resource_type, rest) = text.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if resource_type.is_empty() || name.is_empty() {
            return None;
        }
        let actions = actions
            .split(',')
            .map(str::trim)
            .filter(|action| !action.is_empty())
            .map(str::to_owned)
            .collect();
        Some(Scope { resource_type: resource_type.to_owned(), name: name.to_owned(), actions })
    }

    /// Every scope in the values of `scope` parameters (each may hold several, space-separated);
    /// more than [`MAX_SCOPES`] items (scopes or not) are refused, without reading the rest.
    pub fn parse_all<'a>(values: impl Iterator<Item = &'a str>) -> Result<Vec<Scope>, TooManyScopes> {
        let mut scopes = Vec::new();
        for (index, item) in values.flat_map(str::split_whitespace).enumerate() {
            if index == MAX_SCOPES {
                return Err(TooManyScopes);
            }
            scopes.extend(Scope::parse(item));
        }
        Ok(scopes)
    }

    /// Whether this asks to pull a repository (the only thing a pull-through cache grants).
    pub fn is_repository_pull(&self) -> bool {
        self.resource_type == "repository" && self.actions.iter().any(|action| action == "pull")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_repeated_or_space_separated() {
        let scopes = Scope::parse_all(
            [
                "repository:library/alpine:pull",
                "repository:g/dependency_proxy/containers/x:pull,push registry:catalog:*",
            ]
            .into_iter(),
        )
        .unwrap();
        assert_eq!(scopes.len(), 3);
        assert_eq!(scopes[0].name, "library/alpine");
        assert!(scopes[0].is_repository_pull());
        assert_eq!(scopes[1].actions, vec!["pull".to_owned(), "push".to_owned()]);
        assert!(!scopes[2].is_repository_pull());
        assert_eq!(Scope::parse("repository:a"), None);
        assert_eq!(Scope::parse(":a:pull"), None);
    }

    #[test]
    fn at_most_32_scopes_a_request() {
        let names: Vec<String> = (0..MAX_SCOPES).map(|i| format!("repository:img{i}:pull")).collect();
        assert_eq!(Scope::parse_all(names.iter().map(String::as_str)).unwrap().len(), 32);
        let joined = format!("{} repository:one-more:pull", names.join(" "));
        assert_eq!(Scope::parse_all([joined.as_str()].into_iter()), Err(TooManyScopes));
        // Items that are not scopes count too: they cost parsing all the same.
        let junk = vec!["x"; MAX_SCOPES + 1].join(" ");
        assert_eq!(Scope::parse_all([junk.as_str()].into_iter()), Err(TooManyScopes));
    }
}
