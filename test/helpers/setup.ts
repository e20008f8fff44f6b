import nock from "nock";
import { afterEach, beforeAll } from "vitest";

// No test reaches a real network: only loopback (the Probot server under test) is allowed.
beforeAll(() => {
  nock.disableNetConnect();
  nock.enableNetConnect((host) => /^(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/.test(host));
});

afterEach(() => {
  nock.cleanAll();
});
