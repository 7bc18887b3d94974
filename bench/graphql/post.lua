-- bench/graphql.sh: wrk sends this GraphQL POST on every request.
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["accept"] = "application/graphql-response+json"
wrk.body = '{"query":"{ user(id: \\"1\\") { id name } }"}'
