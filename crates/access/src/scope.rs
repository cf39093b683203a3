//! Scopes of the token spec: `repository:<name>:<action>[,<action>…]`, requested by clients at the
//! token endpoint (repeated, or space-separated in one parameter).

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

    /// Every scope in the values of `scope` parameters (each may hold several, space-separated).
    pub fn parse_all<'a>(values: impl Iterator<Item = &'a str>) -> Vec<Scope> {
        values.flat_map(str::split_whitespace).filter_map(Scope::parse).collect()
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
        );
        assert_eq!(scopes.len(), 3);
        assert_eq!(scopes[0].name, "library/alpine");
        assert!(scopes[0].is_repository_pull());
        assert_eq!(scopes[1].actions, vec!["pull".to_owned(), "push".to_owned()]);
        assert!(!scopes[2].is_repository_pull());
        assert_eq!(Scope::parse("repository:a"), None);
        assert_eq!(Scope::parse(":a:pull"), None);
    }
}
