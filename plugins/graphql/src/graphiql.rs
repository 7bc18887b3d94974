//! The GraphiQL page (off by default: `graphiql: true`), served to a browser
//! opening the endpoint (GET, `Accept: text/html`, no `query`). The page
//! loads GraphiQL's scripts from a CDN (unpkg) and posts queries to the
//! same path.

use covet_plugin_api::Response;

/// The page for an endpoint at `path`.
pub fn page(path: &str) -> Response {
    let endpoint = serde_json::to_string(path).unwrap_or_else(|_| "\"/\"".into());
    let html = PAGE.replace("@ENDPOINT@", &endpoint);
    Response::new(200)
        .with_header("content-type", "text/html; charset=utf-8")
        .with_header("cache-control", "no-store")
        .with_body(html)
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>GraphiQL</title>
  <style>body { margin: 0; height: 100vh; } #graphiql { height: 100vh; }</style>
  <link rel="stylesheet" href="https://unpkg.com/graphiql@3/graphiql.min.css">
  <script crossorigin src="https://unpkg.com/react@18/umd/react.production.min.js"></script>
  <script crossorigin src="https://unpkg.com/react-dom@18/umd/react-dom.production.min.js"></script>
  <script crossorigin src="https://unpkg.com/graphiql@3/graphiql.min.js"></script>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script>
    const fetcher = GraphiQL.createFetcher({ url: @ENDPOINT@ });
    ReactDOM.createRoot(document.getElementById('graphiql')).render(React.createElement(GraphiQL, { fetcher }));
  </script>
</body>
</html>
"#;
