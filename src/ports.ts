// A free TCP port on 127.0.0.1: the rendezvous of `dfkd distill --nproc`'s local ranks (and of
// the tests' hand-launched ranks).
import { createServer } from "node:net";

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}
