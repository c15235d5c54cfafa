package sim

import (
	"regexp"
	"strings"
)

var (
	// computeNameRE is the first part of Azure ML's rule for compute
	// instance names: 3-24 characters, letters, digits and hyphens,
	// starting with a letter. The second part, "if - is used, it needs to
	// be followed by at least one letter later in the name"
	// (how-to-create-compute-instance), needs a look-ahead RE2 lacks:
	// validComputeName checks that what follows the last hyphen holds a
	// letter. So "abc-", "ab--", "a-1" and "cpu-cluster-1" are refused.
	computeNameRE   = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]{2,23}$`)
	letterAfterDash = regexp.MustCompile(`^[^-]*$|-[a-zA-Z0-9]*[a-zA-Z][a-zA-Z0-9]*$`)
	workspaceNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$`)
	resourceGroupRE = regexp.MustCompile(`^[-\w._()]{1,90}$`)
)

func validComputeName(name string) bool {
	return computeNameRE.MatchString(name) && letterAfterDash.MatchString(name)
}

// CheckComputeName returns the error Azure gives for a compute instance
// name that breaks its rules: code InvalidResourceName (microsoft/AzureTRE#3661)
// and the service's message word for word, full-width comma included
// (MicrosoftDocs/pipelines-azureml#19).
func CheckComputeName(name string) error {
	if validComputeName(name) {
		return nil
	}
	return Errorf(KindBadRequest, "InvalidResourceName",
		"Compute name '%s' is not available. Reason: Invalid. Message: A name for an Azure ML Compute Instance must be between 3 and 24 characters in length and must use only numbers, letters and minus symbol (-)，must start with letters. Numbers cannot be the ending of the name if the previous character is a minus symbol (-). Please specify a different Azure ML Instance name", name)
}

// CheckWorkspaceName validates a workspace name.
func CheckWorkspaceName(name string) error {
	if workspaceNameRE.MatchString(name) {
		return nil
	}
	return Errorf(KindBadRequest, "InvalidWorkspaceName",
		"Workspace name '%s' is invalid. It must be 3 to 33 characters long, start with a letter or digit and contain only letters, digits, '-' and '_'.", name)
}

// CheckResourceGroupName validates a resource group name.
func CheckResourceGroupName(name string) error {
	if resourceGroupRE.MatchString(name) && !strings.HasSuffix(name, ".") {
		return nil
	}
	return Errorf(KindBadRequest, "InvalidResourceGroupName",
		"Resource group name '%s' is invalid.", name)
}

// nameAlreadyExists is the error for a compute name taken in the region.
func nameAlreadyExists(name string) error {
	return Errorf(KindConflict, "ComputeNameAlreadyExists",
		"Compute name '%s' is not available. Reason: AlreadyExists. Message: Compute with this name already exists. Compute name needs to be unique across all existing computes within an Azure region.", name)
}
