! e3relax Fortran module: relaxed crystal structures from E3Relax.
!
! Compile this file with your own compiler (module files are compiler
! specific) and link libe3relax. Conventions: lattice(3,3) with
! lattice(:,i) = lattice vector i (the same memory as C's lattice[3][3]
! with row i = vector i, and how QE's at*alat and CP2K's hmat hold it);
! positions(3,natoms) Cartesian; atomic numbers. Lengths in Angstrom, or in
! Bohr with unit='bohr' at load time (CODATA 2018, no constants needed).
!
!   type(e3relax_model) :: model
!   call e3relax_load(model, 'models/default', unit='bohr')
!   call e3relax_predict(model, natoms, numbers, positions, lattice, new_positions, new_lattice)
!   call e3relax_free(model)
!
! Every routine takes an optional ierr as last argument: present, it gets
! the status (0 = success) and e3relax_last_error(message) tells why; absent,
! an error prints the message and stops with `error stop`.
module e3relax
    use, intrinsic :: iso_c_binding
    implicit none
    private

    public :: e3relax_model, e3relax_load, e3relax_free, e3relax_predict, e3relax_predict_batch
    public :: e3relax_num_layers, e3relax_predict_layers, e3relax_train, e3relax_set_predict_progress
    public :: e3relax_predict_uncertainty
    public :: e3relax_last_error, e3relax_version, e3relax_torch_version, e3relax_abi_version
    public :: e3relax_set_num_threads, e3relax_cuda_device_count, E3RELAX_FORTRAN_ABI_VERSION
    public :: E3RELAX_SUCCESS, E3RELAX_INVALID_ARGUMENT, E3RELAX_INVALID_STRUCTURE, E3RELAX_MODEL_ERROR
    public :: E3RELAX_IO_ERROR, E3RELAX_FORMAT_ERROR, E3RELAX_DEVICE_ERROR, E3RELAX_TORCH_ERROR, E3RELAX_INTERNAL_ERROR

    integer, parameter :: E3RELAX_SUCCESS = 0
    integer, parameter :: E3RELAX_INVALID_ARGUMENT = 1
    integer, parameter :: E3RELAX_INVALID_STRUCTURE = 2
    integer, parameter :: E3RELAX_MODEL_ERROR = 3
    integer, parameter :: E3RELAX_IO_ERROR = 4
    integer, parameter :: E3RELAX_FORMAT_ERROR = 5
    integer, parameter :: E3RELAX_DEVICE_ERROR = 6
    integer, parameter :: E3RELAX_TORCH_ERROR = 7
    integer, parameter :: E3RELAX_INTERNAL_ERROR = 8
    !> The C ABI this module was written for (checked before every call
    !> that needs the library; tests check it against the header).
    integer(c_int32_t), parameter :: E3RELAX_FORTRAN_ABI_VERSION = 4

    abstract interface
        !> A training progress callback: gets each event as JSON (a C string)
        !> and returns non-zero to stop the run after a round.
        function e3relax_progress(json, user_data) bind(C) result(stop)
            import :: c_ptr, c_int32_t
            type(c_ptr), value :: json, user_data
            integer(c_int32_t) :: stop
        end function e3relax_progress
    end interface
    public :: e3relax_progress, e3relax_c_string

    !> A loaded model (holds the C handle).
    type :: e3relax_model
        type(c_ptr) :: handle = c_null_ptr
    end type e3relax_model

    interface
        function c_load(path, options, model) bind(C, name="e3relax_load") result(status)
            import :: c_char, c_ptr, c_int32_t
            character(kind=c_char), dimension(*), intent(in) :: path, options
            type(c_ptr), intent(out) :: model
            integer(c_int32_t) :: status
        end function c_load

        function c_free(model) bind(C, name="e3relax_free") result(status)
            import :: c_ptr, c_int32_t
            type(c_ptr), value :: model
            integer(c_int32_t) :: status
        end function c_free

        function c_predict(model, natoms, numbers, positions, lattice, out_positions, out_lattice) &
                bind(C, name="e3relax_predict") result(status)
            import :: c_ptr, c_int32_t, c_double
            type(c_ptr), value :: model
            integer(c_int32_t), value :: natoms
            integer(c_int32_t), dimension(*), intent(in) :: numbers
            real(c_double), dimension(*), intent(in) :: positions, lattice
            real(c_double), dimension(*), intent(out) :: out_positions, out_lattice
            integer(c_int32_t) :: status
        end function c_predict

        function c_predict_frozen(model, natoms, numbers, positions, lattice, move_mask, mask_axes, &
                out_positions, out_lattice) bind(C, name="e3relax_predict_frozen") result(status)
            import :: c_ptr, c_int32_t, c_double
            type(c_ptr), value :: model
            integer(c_int32_t), value :: natoms, mask_axes
            integer(c_int32_t), dimension(*), intent(in) :: numbers, move_mask
            real(c_double), dimension(*), intent(in) :: positions, lattice
            real(c_double), dimension(*), intent(out) :: out_positions, out_lattice
            integer(c_int32_t) :: status
        end function c_predict_frozen

        function c_predict_uncertainty(model, natoms, numbers, positions, lattice, move_mask, mask_axes, &
                out_positions, out_lattice, out_atoms, out_cell, out_volume) &
                bind(C, name="e3relax_predict_uncertainty") result(status)
            import :: c_ptr, c_int32_t, c_double
            type(c_ptr), value :: model
            integer(c_int32_t), value :: natoms, mask_axes
            integer(c_int32_t), dimension(*), intent(in) :: numbers, move_mask
            real(c_double), dimension(*), intent(in) :: positions, lattice
            real(c_double), dimension(*), intent(out) :: out_positions, out_lattice, out_atoms
            real(c_double), intent(out) :: out_cell, out_volume
            integer(c_int32_t) :: status
        end function c_predict_uncertainty

        function c_predict_batch(model, nstructures, natoms, numbers, positions, lattices, out_positions, out_lattices) &
                bind(C, name="e3relax_predict_batch") result(status)
            import :: c_ptr, c_int32_t, c_double
            type(c_ptr), value :: model
            integer(c_int32_t), value :: nstructures
            integer(c_int32_t), dimension(*), intent(in) :: natoms, numbers
            real(c_double), dimension(*), intent(in) :: positions, lattices
            real(c_double), dimension(*), intent(out) :: out_positions, out_lattices
            integer(c_int32_t) :: status
        end function c_predict_batch

        function c_predict_with(model, options, nstructures, natoms, numbers, positions, lattices, move_mask, &
                mask_axes, out_positions, out_lattices, out_atoms, out_cells, out_volumes) &
                bind(C, name="e3relax_predict_with") result(status)
            import :: c_ptr, c_int32_t, c_double, c_char
            type(c_ptr), value :: model
            character(kind=c_char), dimension(*), intent(in) :: options
            integer(c_int32_t), value :: nstructures, mask_axes
            integer(c_int32_t), dimension(*), intent(in) :: natoms, numbers
            real(c_double), dimension(*), intent(in) :: positions, lattices
            type(c_ptr), value :: move_mask, out_atoms, out_cells, out_volumes
            real(c_double), dimension(*), intent(out) :: out_positions, out_lattices
            integer(c_int32_t) :: status
        end function c_predict_with

        function c_num_layers(model, layers) bind(C, name="e3relax_num_layers") result(status)
            import :: c_ptr, c_int32_t
            type(c_ptr), value :: model
            integer(c_int32_t), intent(out) :: layers
            integer(c_int32_t) :: status
        end function c_num_layers

        function c_predict_layers(model, natoms, numbers, positions, lattice, out_positions, out_lattices) &
                bind(C, name="e3relax_predict_layers") result(status)
            import :: c_ptr, c_int32_t, c_double
            type(c_ptr), value :: model
            integer(c_int32_t), value :: natoms
            integer(c_int32_t), dimension(*), intent(in) :: numbers
            real(c_double), dimension(*), intent(in) :: positions, lattice
            real(c_double), dimension(*), intent(out) :: out_positions, out_lattices
            integer(c_int32_t) :: status
        end function c_predict_layers

        function c_train(config, resume, callback, user_data) bind(C, name="e3relax_train") result(status)
            import :: c_char, c_int32_t, c_funptr, c_ptr
            character(kind=c_char), dimension(*), intent(in) :: config
            integer(c_int32_t), value :: resume
            type(c_funptr), value :: callback
            type(c_ptr), value :: user_data
            integer(c_int32_t) :: status
        end function c_train

        function c_set_predict_progress(model, callback, user_data) bind(C, name="e3relax_set_predict_progress") &
                result(status)
            import :: c_ptr, c_funptr, c_int32_t
            type(c_ptr), value :: model, user_data
            type(c_funptr), value :: callback
            integer(c_int32_t) :: status
        end function c_set_predict_progress

        function c_torch_version() bind(C, name="e3relax_torch_version") result(version)
            import :: c_ptr
            type(c_ptr) :: version
        end function c_torch_version

        function c_cuda_device_count(count) bind(C, name="e3relax_cuda_device_count") result(status)
            import :: c_int32_t
            integer(c_int32_t), intent(out) :: count
            integer(c_int32_t) :: status
        end function c_cuda_device_count

        function c_last_error() bind(C, name="e3relax_last_error") result(message)
            import :: c_ptr
            type(c_ptr) :: message
        end function c_last_error

        function c_version() bind(C, name="e3relax_version") result(version)
            import :: c_ptr
            type(c_ptr) :: version
        end function c_version

        function c_abi_version() bind(C, name="e3relax_abi_version") result(version)
            import :: c_int32_t
            integer(c_int32_t) :: version
        end function c_abi_version

        function c_set_num_threads(threads, interop) bind(C, name="e3relax_set_num_threads") result(status)
            import :: c_int32_t
            integer(c_int32_t), value :: threads, interop
            integer(c_int32_t) :: status
        end function c_set_num_threads

        function c_strlen(s) bind(C, name="strlen") result(n)
            import :: c_ptr, c_size_t
            type(c_ptr), value :: s
            integer(c_size_t) :: n
        end function c_strlen
    end interface

contains

    !> Copies a C string into a Fortran string (blank padded, truncated).
    subroutine copy_c_string(cstr, out)
        type(c_ptr), intent(in) :: cstr
        character(len=*), intent(out) :: out
        character(kind=c_char), pointer :: chars(:)
        integer :: i, n
        out = ' '
        if (.not. c_associated(cstr)) return
        n = int(c_strlen(cstr))
        call c_f_pointer(cstr, chars, [n])
        do i = 1, min(n, len(out))
            out(i:i) = chars(i)
        end do
    end subroutine copy_c_string

    !> The message of the last failed call on this thread.
    subroutine e3relax_last_error(message)
        character(len=*), intent(out) :: message
        call copy_c_string(c_last_error(), message)
    end subroutine e3relax_last_error

    !> The library version, e.g. '0.1.0'.
    subroutine e3relax_version(version)
        character(len=*), intent(out) :: version
        call copy_c_string(c_version(), version)
    end subroutine e3relax_version

    !> The libtorch version the library was built against, e.g. '2.11.0'.
    subroutine e3relax_torch_version(version)
        character(len=*), intent(out) :: version
        call copy_c_string(c_torch_version(), version)
    end subroutine e3relax_torch_version

    !> The C ABI version of the loaded library.
    integer function e3relax_abi_version()
        e3relax_abi_version = int(c_abi_version())
    end function e3relax_abi_version

    !> A C string (e.g. a progress callback's json argument) as a Fortran
    !> string.
    function e3relax_c_string(cstr) result(text)
        type(c_ptr), intent(in) :: cstr
        character(len=:), allocatable :: text
        if (.not. c_associated(cstr)) then
            text = ''
            return
        end if
        allocate (character(len=int(c_strlen(cstr))) :: text)
        call copy_c_string(cstr, text)
    end function e3relax_c_string

    !> The library must speak the ABI this module was written for: checked
    !> before any other call (a mismatch is an E3RELAX_INVALID_ARGUMENT).
    logical function abi_matches(ierr)
        integer, optional, intent(out) :: ierr
        abi_matches = c_abi_version() == E3RELAX_FORTRAN_ABI_VERSION
        if (.not. abi_matches) then
            write (0, '(a, i0, a, i0)') 'e3relax: libe3relax has ABI version ', c_abi_version(), &
                ' but this module was written for ', E3RELAX_FORTRAN_ABI_VERSION
            if (present(ierr)) then
                ierr = E3RELAX_INVALID_ARGUMENT
            else
                error stop 1
            end if
        end if
    end function abi_matches

    !> A JSON string literal: quotes, backslashes and control characters
    !> escaped, so that no option value can break the options object.
    function json_string(text) result(quoted)
        character(len=*), intent(in) :: text
        character(len=:), allocatable :: quoted
        character(len=6) :: escape
        integer :: i, code
        quoted = '"'
        do i = 1, len_trim(text)
            code = iachar(text(i:i))
            if (text(i:i) == '"' .or. text(i:i) == '\') then
                quoted = quoted//'\'//text(i:i)
            else if (code < 32) then
                write (escape, '(a, z4.4)') '\u', code
                quoted = quoted//escape
            else
                quoted = quoted//text(i:i)
            end if
        end do
        quoted = quoted//'"'
    end function json_string

    !> Usable CUDA devices (0 without CUDA).
    subroutine e3relax_cuda_device_count(count, ierr)
        integer, intent(out) :: count
        integer, optional, intent(out) :: ierr
        integer(c_int32_t) :: n, status
        count = 0
        if (.not. abi_matches(ierr)) return
        status = c_cuda_device_count(n)
        count = int(n)
        call finish(status, ierr)
    end subroutine e3relax_cuda_device_count

    !> Status handling shared by all routines: hand it back through ierr,
    !> or stop with the library's message.
    subroutine finish(status, ierr)
        integer(c_int32_t), intent(in) :: status
        integer, optional, intent(out) :: ierr
        character(len=1024) :: message
        if (present(ierr)) then
            ierr = int(status)
        else if (status /= E3RELAX_SUCCESS) then
            call e3relax_last_error(message)
            write (0, '(a)') 'e3relax: '//trim(message)
            error stop 1
        end if
    end subroutine finish

    !> Loads a model directory ('' for the shipped default model), with
    !> every option of e3relax_load: unit 'angstrom' (default) or 'bohr';
    !> coordinates 'cartesian' (default) or 'fractional'; device 'cpu'
    !> (default), 'cuda', 'cuda:K' or 'auto'; fixed_cell: keep the lattice
    !> and move only atoms; batch_size: structures per forward pass;
    !> symmetry_tolerance (Angstrom, default 1e-3): the prediction keeps
    !> the input's space group found at this tolerance; symmetrize=.false.
    !> returns the network's raw output instead.
    subroutine e3relax_load(model, path, unit, device, fixed_cell, coordinates, batch_size, &
            symmetry_tolerance, symmetrize, ierr, uncertainty)
        type(e3relax_model), intent(out) :: model
        character(len=*), intent(in) :: path
        character(len=*), optional, intent(in) :: unit, device, coordinates
        logical, optional, intent(in) :: fixed_cell, symmetrize, uncertainty
        integer, optional, intent(in) :: batch_size
        real(c_double), optional, intent(in) :: symmetry_tolerance
        integer, optional, intent(out) :: ierr
        character(len=:), allocatable :: options
        character(len=32) :: number
        if (.not. abi_matches(ierr)) return
        options = '{"fixed_cell": '
        if (present(fixed_cell)) then
            options = options//merge('true ', 'false', fixed_cell)
        else
            options = options//'false'
        end if
        options = trim(options)
        if (present(unit)) options = options//', "length_unit": '//json_string(unit)
        if (present(device)) options = options//', "device": '//json_string(device)
        if (present(coordinates)) options = options//', "coordinates": '//json_string(coordinates)
        if (present(batch_size)) then
            write (number, '(i0)') batch_size
            options = options//', "batch_size": '//trim(number)
        end if
        if (present(symmetrize)) then
            if (.not. symmetrize) options = options//', "symmetry_tolerance": null'
        end if
        if (present(symmetry_tolerance) .and. .not. index(options, 'null') > 0) then
            write (number, '(es23.16)') symmetry_tolerance
            options = options//', "symmetry_tolerance": '//trim(adjustl(number))
        end if
        if (present(uncertainty)) then
            if (uncertainty) options = options//', "uncertainty": true'
        end if
        options = options//'}'
        call finish(c_load(trim(path)//c_null_char, options//c_null_char, model%handle), ierr)
    end subroutine e3relax_load

    !> The number of layers of the model (structures predict_layers returns).
    subroutine e3relax_num_layers(model, layers, ierr)
        type(e3relax_model), intent(in) :: model
        integer, intent(out) :: layers
        integer, optional, intent(out) :: ierr
        integer(c_int32_t) :: n, status
        status = c_num_layers(model%handle, n)
        layers = int(n)
        call finish(status, ierr)
    end subroutine e3relax_num_layers

    !> Every layer's structure: new_positions(3, natoms, layers),
    !> new_lattices(3, 3, layers); the last layer is e3relax_predict's answer.
    subroutine e3relax_predict_layers(model, natoms, numbers, positions, lattice, new_positions, new_lattices, ierr)
        type(e3relax_model), intent(in) :: model
        integer, intent(in) :: natoms
        integer, intent(in) :: numbers(natoms)
        real(c_double), intent(in) :: positions(3, natoms), lattice(3, 3)
        real(c_double), intent(out) :: new_positions(:, :, :), new_lattices(:, :, :)
        integer, optional, intent(out) :: ierr
        integer :: layers
        integer(c_int32_t) :: z(natoms)
        call e3relax_num_layers(model, layers, ierr)
        if (present(ierr)) then
            if (ierr /= E3RELAX_SUCCESS) return
        end if
        if (any(shape(new_positions) /= [3, natoms, layers]) .or. any(shape(new_lattices) /= [3, 3, layers])) then
            write (0, '(a, i0, a)') 'e3relax: e3relax_predict_layers: outputs must be (3, natoms, ', layers, &
                ') and (3, 3, layers)'
            call finish(int(E3RELAX_INVALID_ARGUMENT, c_int32_t), ierr)
            return
        end if
        z = int(numbers, c_int32_t)
        call finish(c_predict_layers(model%handle, int(natoms, c_int32_t), z, positions, lattice, &
            new_positions, new_lattices), ierr)
    end subroutine e3relax_predict_layers

    !> Trains or fine-tunes a model as `e3relax train` does: config_json is
    !> the training configuration; resume continues its checkpoint;
    !> progress (optional, see e3relax_progress) gets each event and can
    !> stop the run after a round by returning non-zero; user_data is
    !> passed to it unchanged.
    subroutine e3relax_train(config_json, resume, progress, user_data, ierr)
        character(len=*), intent(in) :: config_json
        logical, optional, intent(in) :: resume
        procedure(e3relax_progress), optional :: progress
        type(c_ptr), optional, intent(in) :: user_data
        integer, optional, intent(out) :: ierr
        type(c_funptr) :: callback
        type(c_ptr) :: data
        integer(c_int32_t) :: again
        if (.not. abi_matches(ierr)) return
        callback = c_null_funptr
        if (present(progress)) callback = c_funloc(progress)
        data = c_null_ptr
        if (present(user_data)) data = user_data
        again = 0
        if (present(resume)) then
            if (resume) again = 1
        end if
        call finish(c_train(trim(config_json)//c_null_char, again, callback, data), ierr)
    end subroutine e3relax_train

    !> Sets the progress callback of batched predictions: callback is
    !> c_funloc of a bind(C) subroutine(done, total, user_data) with
    !> integer(c_int32_t), value :: done, total and type(c_ptr), value ::
    !> user_data; c_null_funptr removes it.
    subroutine e3relax_set_predict_progress(model, callback, user_data, ierr)
        type(e3relax_model), intent(in) :: model
        type(c_funptr), intent(in) :: callback
        type(c_ptr), optional, intent(in) :: user_data
        integer, optional, intent(out) :: ierr
        type(c_ptr) :: data
        data = c_null_ptr
        if (present(user_data)) data = user_data
        call finish(c_set_predict_progress(model%handle, callback, data), ierr)
    end subroutine e3relax_set_predict_progress

    !> Frees the model (a no-op on a model that was never loaded).
    subroutine e3relax_free(model, ierr)
        type(e3relax_model), intent(inout) :: model
        integer, optional, intent(out) :: ierr
        integer(c_int32_t) :: status
        status = c_free(model%handle)
        model%handle = c_null_ptr
        call finish(status, ierr)
    end subroutine e3relax_free

    !> Predicts the relaxed positions and lattice of one crystal.
    !> move_mask(3, natoms) (optional): .false. where atom i is frozen
    !> along axis k, e.g. Quantum ESPRESSO's if_pos == 0. The axes are
    !> Cartesian, or the lattice vectors with lattice_axes=.true. (VASP's
    !> selective dynamics). Frozen coordinates come back as given with a
    !> fixed cell; with a variable cell a frozen atom keeps its fractional
    !> coordinates.
    subroutine e3relax_predict(model, natoms, numbers, positions, lattice, new_positions, new_lattice, ierr, &
            move_mask, lattice_axes)
        type(e3relax_model), intent(in) :: model
        integer, intent(in) :: natoms
        integer, intent(in) :: numbers(natoms)
        real(c_double), intent(in) :: positions(3, natoms), lattice(3, 3)
        real(c_double), intent(out) :: new_positions(3, natoms), new_lattice(3, 3)
        integer, optional, intent(out) :: ierr
        logical, optional, intent(in) :: move_mask(3, natoms)
        logical, optional, intent(in) :: lattice_axes
        integer(c_int32_t) :: status, axes
        integer(c_int32_t) :: z(natoms), flags(3, natoms)
        z = int(numbers, c_int32_t)
        if (present(move_mask)) then
            flags = merge(1_c_int32_t, 0_c_int32_t, move_mask)
            axes = 0
            if (present(lattice_axes)) then
                if (lattice_axes) axes = 1
            end if
            status = c_predict_frozen(model%handle, int(natoms, c_int32_t), z, positions, lattice, flags, axes, &
                new_positions, new_lattice)
        else
            status = c_predict(model%handle, int(natoms, c_int32_t), z, positions, lattice, new_positions, new_lattice)
        end if
        call finish(status, ierr)
    end subroutine e3relax_predict

    !> e3relax_predict with an ensemble's spread (load with
    !> uncertainty=.true. a model directory that has ensemble.json):
    !> atom_uncertainty(natoms) in the model's length unit, the cell strain's
    !> spread (dimensionless) and the volume's (length unit cubed);
    !> move_mask and lattice_axes as for e3relax_predict.
    subroutine e3relax_predict_uncertainty(model, natoms, numbers, positions, lattice, new_positions, new_lattice, &
            atom_uncertainty, cell_uncertainty, volume_uncertainty, ierr, move_mask, lattice_axes)
        type(e3relax_model), intent(in) :: model
        integer, intent(in) :: natoms
        integer, intent(in) :: numbers(natoms)
        real(c_double), intent(in) :: positions(3, natoms), lattice(3, 3)
        real(c_double), intent(out) :: new_positions(3, natoms), new_lattice(3, 3), atom_uncertainty(natoms)
        real(c_double), intent(out) :: cell_uncertainty, volume_uncertainty
        integer, optional, intent(out) :: ierr
        logical, optional, intent(in) :: move_mask(3, natoms), lattice_axes
        integer(c_int32_t) :: z(natoms), flags(3, natoms), axes
        z = int(numbers, c_int32_t)
        ! All ones (every atom free) unless a mask is given.
        flags = 1
        if (present(move_mask)) flags = merge(1_c_int32_t, 0_c_int32_t, move_mask)
        axes = 0
        if (present(lattice_axes)) then
            if (lattice_axes) axes = 1
        end if
        call finish(c_predict_uncertainty(model%handle, int(natoms, c_int32_t), z, positions, lattice, flags, axes, &
            new_positions, new_lattice, atom_uncertainty, cell_uncertainty, volume_uncertainty), ierr)
    end subroutine e3relax_predict_uncertainty

    !> Predicts many crystals of different sizes: natoms(nstructures) atom
    !> counts, numbers and positions concatenated, lattices(3,3,nstructures).
    !> options (JSON, optional) changes the handle's settings for this call
    !> only: fixed_cell, batch_size, symmetry_tolerance, trust,
    !> surface_trust, line_search (e3relax_predict_with; layers come from
    !> e3relax_predict_layers).
    subroutine e3relax_predict_batch(model, nstructures, natoms, numbers, positions, lattices, &
            new_positions, new_lattices, options, ierr)
        type(e3relax_model), intent(in) :: model
        integer, intent(in) :: nstructures
        integer, intent(in) :: natoms(nstructures)
        integer, intent(in) :: numbers(:)
        real(c_double), intent(in) :: positions(:, :), lattices(3, 3, nstructures)
        real(c_double), intent(out) :: new_positions(:, :), new_lattices(3, 3, nstructures)
        character(len=*), optional, intent(in) :: options
        integer, optional, intent(out) :: ierr
        integer(c_int32_t) :: status
        integer(c_int32_t) :: counts(nstructures), z(size(numbers))
        real(c_double), allocatable :: flat_in(:), flat_out(:)
        if (sum(natoms) /= size(numbers) .or. size(positions, 2) /= size(numbers) .or. &
                size(new_positions, 2) /= size(numbers) .or. size(positions, 1) /= 3) then
            write (0, '(a)') 'e3relax: e3relax_predict_batch: sum(natoms), numbers and positions(3,:) disagree'
            call finish(int(E3RELAX_INVALID_ARGUMENT, c_int32_t), ierr)
            return
        end if
        counts = int(natoms, c_int32_t)
        z = int(numbers, c_int32_t)
        flat_in = reshape(positions, [3 * size(numbers)])
        allocate (flat_out(3 * size(numbers)))
        if (present(options)) then
            if (index(options, '"layers"') > 0) then
                write (0, '(a)') 'e3relax: e3relax_predict_batch returns one structure each: use e3relax_predict_layers'
                call finish(int(E3RELAX_INVALID_ARGUMENT, c_int32_t), ierr)
                return
            end if
            status = c_predict_with(model%handle, trim(options)//c_null_char, int(nstructures, c_int32_t), &
                counts, z, flat_in, lattices, c_null_ptr, 0_c_int32_t, flat_out, new_lattices, &
                c_null_ptr, c_null_ptr, c_null_ptr)
        else
            status = c_predict_batch(model%handle, int(nstructures, c_int32_t), counts, z, flat_in, lattices, &
                flat_out, new_lattices)
        end if
        if (status == E3RELAX_SUCCESS) new_positions = reshape(flat_out, [3, size(numbers)])
        call finish(status, ierr)
    end subroutine e3relax_predict_batch

    !> Sets libtorch's thread counts (interop > 0 only once per process).
    subroutine e3relax_set_num_threads(threads, interop, ierr)
        integer, intent(in) :: threads
        integer, optional, intent(in) :: interop
        integer, optional, intent(out) :: ierr
        integer(c_int32_t) :: inter
        if (.not. abi_matches(ierr)) return
        inter = 0
        if (present(interop)) inter = int(interop, c_int32_t)
        call finish(c_set_num_threads(int(threads, c_int32_t), inter), ierr)
    end subroutine e3relax_set_num_threads

end module e3relax
