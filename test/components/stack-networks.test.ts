// StackNetworks under Pulumi mocks: the edge network and the internal data network.
import { NETWORK, ofType } from "../mocks";
import { build, preprodConfig, resetCaptured } from "./helpers";

beforeEach(resetCaptured);

describe("StackNetworks", () => {
    it("creates an edge network and an internal data network named after the stack", async () => {
        await build(preprodConfig());
        const nets = ofType(NETWORK).map((n) => n.inputs);
        expect(nets).toEqual(
            expect.arrayContaining([
                expect.objectContaining({ name: "vps-stack-preprod-edge" }),
                expect.objectContaining({ name: "vps-stack-preprod-data", internal: true }),
            ]),
        );
        expect(nets.find((n) => n.name.endsWith("-edge")).internal).toBeFalsy();
    });
});
