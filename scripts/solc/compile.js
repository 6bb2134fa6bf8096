// Compile memsync's vault registry with the pinned solc package, offline.
// Usage: node compile.js path/to/VaultRegistry.sol  -> prints the build JSON on stdout.
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const source = process.argv[2];
const input = {
  language: "Solidity",
  sources: { "VaultRegistry.sol": { content: fs.readFileSync(source, "utf8") } },
  settings: {
    evmVersion: "cancun",
    optimizer: { enabled: true, runs: 10000 },
    metadata: { bytecodeHash: "none" },
    outputSelection: { "*": { VaultRegistry: ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  for (const e of errors) process.stderr.write(e.formattedMessage + "\n");
  process.exit(1);
}
const c = out.contracts["VaultRegistry.sol"].VaultRegistry;
const build = {
  compiler: "solc " + solc.version(),
  settings: input.settings,
  abi: c.abi,
  bytecode: "0x" + c.evm.bytecode.object,
  deployedBytecode: "0x" + c.evm.deployedBytecode.object,
};
process.stdout.write(JSON.stringify(build, null, 1) + "\n");
