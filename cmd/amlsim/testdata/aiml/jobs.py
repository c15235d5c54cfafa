"""Drives azure-ai-ml (Debian's python3-azure, 1.4.0) against amlsim, as a
user's script would: submit a command job to a compute instance and stream
it, stream a failing one, cancel a long one. Run by TestAzureAIMLJobs with
AZUREML_DEV_URL_MFE (azure-ai-ml's own override of the management URL),
REQUESTS_CA_BUNDLE (amlsim's CA), AMLSIM_TOKEN and AMLSIM_COMPUTE; the
pydash beside it stands in for the module Debian does not package.
Prints one line per outcome for the test to check."""
import os
import sys
import time

from azure.ai.ml import MLClient, command
from azure.ai.ml.exceptions import JobException
from azure.core.credentials import AccessToken


class Token:
    def get_token(self, *scopes, **kwargs):
        return AccessToken(os.environ["AMLSIM_TOKEN"], int(time.time()) + 3600)


ml = MLClient(Token(), "00000000-0000-0000-0000-000000000000", "rg-local", "ws-local")
compute = os.environ["AMLSIM_COMPUTE"]
env = "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest"


def job(name, cmd, **variables):
    j = command(command=cmd, inputs={"lr": 0.01}, environment=env, compute=compute,
                environment_variables=variables, display_name=name)
    j.name = name
    return ml.jobs.create_or_update(j)


created = job("py-train", "python train.py --lr ${{inputs.lr}}", AMLSIM_FAKE_OUTPUT="epoch 1: loss 0.5", AMLSIM_FAKE_DURATION="2s")
print("created", created.name, created.status, flush=True)
ml.jobs.stream("py-train")
print("final", ml.jobs.get("py-train").status, flush=True)

job("py-fails", "python broken.py", AMLSIM_FAKE_EXIT_CODE="3", AMLSIM_FAKE_DURATION="1s")
try:
    ml.jobs.stream("py-fails")
    print("stream of a failing job did not raise", flush=True)
except JobException as e:
    print("failed:", str(e).replace("\n", " "), flush=True)

job("py-long", "sleep 600", AMLSIM_FAKE_DURATION="10m")
while ml.jobs.get("py-long").status != "Running":
    time.sleep(0.2)
ml.jobs.begin_cancel("py-long").result()
print("canceled", ml.jobs.get("py-long").status, flush=True)
sys.exit(0)
