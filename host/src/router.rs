//! The router: one matchit tree per method plus one for routes that accept
//! any method. Answers "which route?", and when none matches, whether that is
//! a 404 or a 405 (and which methods are allowed).

use http::Method;

/// A match: the route's index and its parameters.
pub struct Found {
    /// Index into the route table.
    pub route: usize,
    /// `(name, value)` pairs from `{name}` / `{*name}` segments.
    pub params: Vec<(String, String)>,
    /// True when a `HEAD` request was served by a `GET` route.
    pub head_as_get: bool,
}

/// Why nothing matched.
#[derive(Debug, PartialEq, Eq)]
pub enum Miss {
    /// No route has this path.
    NotFound,
    /// Routes have this path, for these other methods.
    MethodNotAllowed(Vec<Method>),
}

/// Route trees, built once per route table.
#[derive(Default)]
pub struct Router {
    by_method: Vec<(Method, matchit::Router<usize>)>,
    any: matchit::Router<usize>,
}

impl Router {
    /// Adds route `index` for `methods` (empty = any method).
    pub fn insert(&mut self, path: &str, methods: &[Method], index: usize) -> Result<(), matchit::InsertError> {
        if methods.is_empty() {
            return self.any.insert(path, index);
        }
        for method in methods {
            self.tree_mut(method).insert(path, index)?;
        }
        Ok(())
    }

    fn tree_mut(&mut self, method: &Method) -> &mut matchit::Router<usize> {
        let at = match self.by_method.iter().position(|(m, _)| m == method) {
            Some(at) => at,
            None => {
                self.by_method.push((method.clone(), matchit::Router::new()));
                self.by_method.len() - 1
            }
        };
        &mut self.by_method[at].1
    }

    fn tree(&self, method: &Method) -> Option<&matchit::Router<usize>> {
        self.by_method.iter().find(|(m, _)| m == method).map(|(_, t)| t)
    }

    /// Finds the route for `method` and `path`.
    pub fn lookup(&self, method: &Method, path: &str) -> Result<Found, Miss> {
        let direct = self.tree(method).and_then(|t| t.at(path).ok()).or_else(|| self.any.at(path).ok());
        if let Some(m) = direct {
            return Ok(found(m, false));
        }
        if method == Method::HEAD
            && let Some(m) = self.tree(&Method::GET).and_then(|t| t.at(path).ok())
        {
            return Ok(found(m, true));
        }
        Err(self.miss(path))
    }

    fn miss(&self, path: &str) -> Miss {
        let mut allowed: Vec<Method> =
            self.by_method.iter().filter(|(_, t)| t.at(path).is_ok()).map(|(m, _)| m.clone()).collect();
        if allowed.contains(&Method::GET) && !allowed.contains(&Method::HEAD) {
            allowed.push(Method::HEAD);
        }
        if allowed.is_empty() { Miss::NotFound } else { Miss::MethodNotAllowed(allowed) }
    }
}

fn found(m: matchit::Match<'_, '_, &usize>, head_as_get: bool) -> Found {
    let params = match m.params.is_empty() {
        true => Vec::new(),
        false => m.params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    Found { route: *m.value, params, head_as_get }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let mut r = Router::default();
        r.insert("/users/{id}", &[Method::GET], 0).unwrap();
        r.insert("/users/{id}", &[Method::DELETE], 1).unwrap();
        r.insert("/files/{*rest}", &[], 2).unwrap();
        r
    }

    #[test]
    fn matches_params_per_method() {
        let f = router().lookup(&Method::DELETE, "/users/7").ok().unwrap();
        assert_eq!((f.route, f.params), (1, vec![("id".to_string(), "7".to_string())]));
    }

    #[test]
    fn catch_all_accepts_any_method() {
        let f = router().lookup(&Method::PATCH, "/files/a/b.txt").ok().unwrap();
        assert_eq!((f.route, f.params[0].1.as_str()), (2, "a/b.txt"));
    }

    #[test]
    fn head_falls_back_to_get() {
        let f = router().lookup(&Method::HEAD, "/users/1").ok().unwrap();
        assert!(f.head_as_get);
        assert_eq!(f.route, 0);
    }

    #[test]
    fn wrong_method_is_405_with_allowed_methods() {
        let miss = router().lookup(&Method::POST, "/users/1").err().unwrap();
        assert_eq!(miss, Miss::MethodNotAllowed(vec![Method::GET, Method::DELETE, Method::HEAD]));
    }

    #[test]
    fn unknown_path_is_404() {
        assert_eq!(router().lookup(&Method::GET, "/nope").err().unwrap(), Miss::NotFound);
    }
}
