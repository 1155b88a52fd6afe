-- facade_post.lua: wrk script for the facade POST scenario. Every request is
--   POST /facade  Content-Type: application/json  {"msg":"..."}
-- with a fixed body of 64 bytes; the facade gives each one a fresh uuid, so
-- every request stores a new message on --replicas logging-service instances.
-- Answers other than 2xx show up in wrk's "Non-2xx or 3xx responses" line,
-- which bench/run.sh checks (and fails on).
wrk.method = "POST"
wrk.body = '{"msg":"bench message 0123456789 abcdefghijklmnopqrstuvwxyz ABCD"}'
wrk.headers["Content-Type"] = "application/json"
